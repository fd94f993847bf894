"""Two models side by side (``segexplorer compare``, ``engine.compare``): the issue's checks.

* a model compared with itself: IoU 1, identical scores, correlation 1, difference maps
  exactly zero, no pixel changed;
* a model and a copy whose classifier row for one class is scaled: pixels change class
  only to or from that class; every class whose mask did not change keeps its score and
  its maps to the last digit; the per-class IoU is the IoU of the two argmax maps;
* each side's maps are ``explain``'s for that model alone (and Captum's), on a built-in
  model, an smp card and a Hugging Face card (3 classes against 5, shared names);
* bad pairs: one line, exit 1, no output folder (no class in common, a card that fails,
  a device that cannot hold both: the memory seam on the CPU).

Tiny models and sizes throughout (tests/tiny_models.py, cards built here like
tests/card_models.py's, untrained and seeded).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, LayerAttribution, LayerGradCam
from parity import assert_close
from PIL import Image

from segexplorer.cli import main
from segexplorer.engine.aggregation import Aggregation, make_wrapper
from segexplorer.engine.analysis import ExplainRequest, explain
from segexplorer.engine.budget import ENV_VAR, MemoryBudget, resolve_budget
from segexplorer.engine.compare import (
    ClassPair,
    common_segments,
    label_sets,
    match_classes,
    resolve_targets,
    to_grid,
)
from segexplorer.engine.compare_run import (
    compare_sessions,
    load_pair,
    model_bytes,
    pair_memory,
)
from segexplorer.engine.errors import UserError
from segexplorer.engine.image import load_image
from segexplorer.engine.models import build_untrained, get_architecture, load_model
from segexplorer.engine.results import Prediction
from segexplorer.render.compare import changed_pixels_rgba, transition_colors

SIZE = 48
SCALED_CLASS = 18  # 'sofa': a mid-sized class of the tiny model on the blocks image
SCALE = 1.2


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scaled_weights(tmp_path_factory) -> Path:
    """The tiny model with its classifier row for SCALED_CLASS (weights and bias) x SCALE."""
    state = build_untrained(get_architecture("tiny")).state_dict()
    state["head.weight"][SCALED_CLASS] *= SCALE
    state["head.bias"][SCALED_CLASS] *= SCALE
    path = tmp_path_factory.mktemp("scaled") / "tiny_sofa_x1.2.pt"
    torch.save(state, path)
    return path


def _request(image: Path, model: str, weights: str | None, **kw) -> ExplainRequest:
    return ExplainRequest(image=str(image), model=model, weights=weights, device="cpu",
                          size=kw.pop("size", SIZE), **kw)


def _compare(image: Path, a: ExplainRequest, b: ExplainRequest, **kw):
    pair = load_pair(a, b, load_image(image))
    sa, sb = pair.sessions()
    return compare_sessions(sa, sb, pair.request_a, pair.request_b, **kw), (sa, sb)


@pytest.fixture(scope="module")
def self_comparison(blocks_image):
    request = _request(blocks_image, "tiny", "untrained")
    return _compare(blocks_image, request, request)[0]


@pytest.fixture(scope="module")
def scaled_comparison(blocks_image, scaled_weights):
    a = _request(blocks_image, "tiny", "untrained")
    b = _request(blocks_image, "tiny", str(scaled_weights))
    return _compare(blocks_image, a, b)


def _upscaled_class_map(prediction: Prediction, grid: tuple[int, int]) -> np.ndarray:
    # the test reads the argmax map itself, to check what the engine derives from masks
    return to_grid(prediction.class_map, grid)


# -- a model compared with itself ---------------------------------------------------------------
def test_a_model_compared_with_itself_changes_nothing(self_comparison):
    c = self_comparison
    assert c.changed_pixels == 0 and c.transitions == ()
    assert (c.transition_map() == -1).all()
    assert c.classes, "the tiny model predicts several classes on the blocks"
    for row in c.classes:
        assert row.pair.shared and row.iou == 1.0 and row.change == 0.0
        assert row.score_a == row.score_b and row.share_a == row.share_b
        assert row.segments == ()  # no segment moves the class differently
        for method in ("gradcam", "ablation"):
            stats = row.maps[method]
            assert stats.max_abs_difference == 0.0 and stats.mean_difference == 0.0
            assert stats.identical
        assert row.maps["gradcam"].spearman == pytest.approx(1.0)
        # one class segment covers the union: rank correlation is undefined there, and
        # over the segments it is 1
        assert row.maps["ablation"].spearman_segments == pytest.approx(1.0)
        for method in ("gradcam", "ablation"):
            np.testing.assert_array_equal(c.difference(method, row.pair),
                                          np.zeros(c.grid, np.float32))
    activation = c.model_maps["activation"]
    assert activation.max_abs_difference == 0.0 and activation.spearman == pytest.approx(1.0)


def test_the_cli_compares_a_model_with_itself_into_the_documented_files(tmp_path,
                                                                        blocks_image, capsys):
    out = tmp_path / "same"
    code = main(["compare", str(blocks_image), "--model", "tiny", "--weights", "untrained",
                 "--with", "tiny", "--with-weights", "untrained", "--size", str(SIZE),
                 "--device", "cpu", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "0.00% of pixels changed class" in printed and "memory:" in printed
    report = json.loads((out / "compare.json").read_text())
    assert report["pixels_changed"] == {"pixels": 0, "share": 0.0, "transitions": []}
    assert report["grid"] == [96, 128] and report["scores_comparable"] is True
    assert report["resample"] == {"class_maps": "nearest", "attribution_maps": "nearest"}
    for entry in report["per_class"]:
        assert entry["iou"] == 1.0 and entry["score_a"] == entry["score_b"]
        assert entry["maps"]["gradcam"]["spearman"] == pytest.approx(1.0)
        for stats in entry["maps"].values():
            assert stats["mean_abs_difference"] == 0.0 and stats["max_abs_difference"] == 0.0
        assert entry["segments_moved"] == [] and entry["segments_moved_count"] == 0
        assert (out / entry["figure"]).is_file()
    for side in ("a", "b"):
        assert (out / side / "report.json").is_file()
        assert (out / side / "attributions.npz").is_file()
        assert (out / side / "segmentation.png").is_file()
    assert Image.open(out / "pixels_changed.png").size[0] > 300
    assert (out / "compare_activation.png").is_file()
    arrays = np.load(out / "compare.npz")
    assert (arrays["transitions"] == -1).all() and arrays["transitions"].shape == (96, 128)
    np.testing.assert_array_equal(arrays["ablation_table_a"], arrays["ablation_table_b"])
    assert not list(tmp_path.glob(".same.*"))  # the staging folder was renamed into place


# -- a copy with one classifier row scaled --------------------------------------------------------
def test_scaling_one_class_row_changes_pixels_only_to_or_from_that_class(scaled_comparison):
    c, (sa, sb) = scaled_comparison
    scaled = sa.model.categories[SCALED_CLASS]
    assert c.changed_pixels > 0, "the scale must move some pixels for the test to mean much"
    for t in c.transitions:
        assert scaled in t.before + t.after, t.label
    before = _upscaled_class_map(sa.predict(), c.grid)
    after = _upscaled_class_map(sb.predict(), c.grid)
    changed = before != after
    assert int(changed.sum()) == c.changed_pixels
    assert ((before[changed] == SCALED_CLASS) | (after[changed] == SCALED_CLASS)).all()
    np.testing.assert_array_equal(c.transition_map() >= 0, changed)


def test_per_class_iou_is_the_iou_of_the_two_argmax_maps(scaled_comparison):
    c, (sa, sb) = scaled_comparison
    before = _upscaled_class_map(sa.predict(), c.grid)
    after = _upscaled_class_map(sb.predict(), c.grid)
    for row in c.classes:
        k = row.pair.a
        union = np.count_nonzero((before == k) | (after == k))
        assert row.iou == np.count_nonzero((before == k) & (after == k)) / union


def test_classes_whose_mask_did_not_change_keep_score_and_maps_to_the_last_digit(
        scaled_comparison):
    c, (sa, sb) = scaled_comparison
    kept = [row for row in c.classes if np.array_equal(sa.predict().class_map == row.pair.a,
                                                       sb.predict().class_map == row.pair.b)]
    assert kept and any(row.iou < 1 for row in c.classes)
    for row in kept:
        assert row.pair.a != SCALED_CLASS
        assert row.iou == 1.0 and row.score_a == row.score_b
        for method in ("gradcam", "ablation"):
            assert row.maps[method].max_abs_difference == 0.0, method
        k = row.pair.a
        ra, rb = c.a.result, c.b.result
        np.testing.assert_array_equal(ra.gradcam.raw[k], rb.gradcam.raw[k])
        np.testing.assert_array_equal(ra.gradcam.upsampled[k], rb.gradcam.upsampled[k])
        np.testing.assert_array_equal(c.a.common_maps["ablation"].maps[k],
                                      c.b.common_maps["ablation"].maps[k])
    # the segments both models ablate: the intersection of the two predictions
    common = c.common
    assert common is not None and common.kind == "class"
    for seg in common.info:
        ids = common.ids == seg.id
        assert (_upscaled_class_map(sa.predict(), c.grid)[ids] == seg.a_classes[0]).all()
        assert (_upscaled_class_map(sb.predict(), c.grid)[ids] == seg.b_classes[0]).all()


def test_segments_that_move_a_class_differently_are_listed_largest_first(scaled_comparison):
    c, _ = scaled_comparison
    moved = [row for row in c.classes if row.segments]
    assert moved
    for row in moved:
        sizes = [abs(s.difference) for s in row.segments]
        assert sizes == sorted(sizes, reverse=True) and all(v > 0 for v in sizes)
        sweep_a, sweep_b = c.a.common_sweep, c.b.common_sweep
        for s in row.segments:
            assert s.delta_a == sweep_a.table[sweep_a.segments.row_of()[s.segment], row.pair.a]
            assert s.delta_b == sweep_b.table[sweep_b.segments.row_of()[s.segment], row.pair.b]


# -- each side is explain's own (and Captum's) -----------------------------------------------------
def test_each_side_of_a_builtin_pair_equals_explain_alone(scaled_comparison, blocks_image,
                                                          scaled_weights):
    c, _ = scaled_comparison
    for side, weights in ((c.a, "untrained"), (c.b, str(scaled_weights))):
        targets = ",".join(str(k) for k in side.result.targets)
        alone = explain(_request(blocks_image, "tiny", weights, targets=targets))
        assert alone.targets == side.result.targets
        np.testing.assert_array_equal(alone.prediction.logits, side.result.prediction.logits)
        for k in alone.targets:
            np.testing.assert_array_equal(alone.gradcam.raw[k], side.result.gradcam.raw[k])
            np.testing.assert_array_equal(alone.sweep.attribution_map(k),
                                          side.result.sweep.attribution_map(k))
        np.testing.assert_array_equal(alone.gradcam.activation_mean,
                                      side.result.gradcam.activation_mean)


SMP_CLASSES = ("background", "road", "car")
HF_CLASSES = ("Background", "road", "Car", "person", "tree")  # matched ignoring case


@dataclass(frozen=True)
class Cards:
    smp: Path
    hf: Path
    broken: Path
    strangers: Path


@pytest.fixture(scope="module")
def cards(tmp_path_factory) -> Cards:
    """An smp Unet (3 classes) and a Hugging Face SegFormer (5 classes, 3 names shared),
    untrained and saved as a user would; a card whose factory fails; and a model whose
    class names the tiny model does not know."""
    import segmentation_models_pytorch as smp
    from safetensors.torch import save_file
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    root = tmp_path_factory.mktemp("compare_cards")

    def write(name: str, text: str) -> Path:
        path = root / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    torch.manual_seed(21)
    unet = smp.Unet(encoder_name="resnet18", encoder_weights=None, classes=3)
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()},
              str(root / "unet.safetensors"))
    (root / "labels.txt").write_text("\n".join(SMP_CLASSES) + "\n", encoding="utf-8")
    smp_card = write("unet.toml", '''
        [model]
        source = "smp"
        architecture = "Unet"
        encoder = "resnet18"
        weights = "unet.safetensors"
        labels = "labels.txt"

        [preprocess]
        size = 45

        [explain]
        layer = "encoder.layer4.1.conv2"
        ''')
    labels = dict(enumerate(HF_CLASSES))
    config = SegformerConfig(
        num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1],
        hidden_sizes=[8, 16], patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2],
        mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=len(labels), id2label=labels,
        label2id={v: k for k, v in labels.items()})
    torch.manual_seed(22)
    SegformerForSemanticSegmentation(config).eval().save_pretrained(root / "segformer")
    (root / "segformer" / "preprocessor_config.json").write_text(
        '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], '
        '"size": {"height": 48, "width": 48}, "do_normalize": true}', encoding="utf-8")
    hf_card = write("segformer.toml", '''
        [model]
        source = "huggingface"
        weights = "segformer"
        ''')
    (root / "user_models.py").write_text(textwrap.dedent('''
        from torch import nn


        def build_broken():
            raise ValueError("the checkpoint folder is not mounted")


        def build_strangers():
            return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1))
        '''), encoding="utf-8")
    broken = write("broken.toml", '''
        [model]
        source = "python"
        factory = "user_models.py:build_broken"
        classes = ["a", "b"]
        ''')
    strangers = write("strangers.toml", '''
        [model]
        source = "python"
        factory = "user_models.py:build_strangers"
        classes = ["x", "y", "z"]
        ''')
    return Cards(smp_card, hf_card, broken, strangers)


@pytest.fixture(scope="module")
def card_comparison(cards, astronaut_path):
    a = ExplainRequest(image=str(astronaut_path), model=str(cards.smp), device="cpu",
                       segments="class")
    b = ExplainRequest(image=str(astronaut_path), model=str(cards.hf), device="cpu",
                       segments="class")
    return _compare(astronaut_path, a, b)


def test_an_smp_card_and_a_hugging_face_card_are_matched_by_name(card_comparison):
    c, (sa, sb) = card_comparison
    m = c.matching
    assert [p.name for p in m.shared] == ["background", "road", "car"]
    assert [p.name for p in m.only_b] == ["person", "tree"] and m.only_a == ()
    assert sa.image.shape != sb.image.shape  # each keeps its own working size (45, 48)
    assert sa.image.normalization != sb.image.normalization  # and its own mean and std
    for row in c.classes:
        if row.pair.shared:
            assert row.iou is not None
            continue
        assert row.pair.a is None and row.share_a is None and row.score_a is None
        assert row.iou is None and row.maps == {} and row.segments == ()
        assert row.share_b == sb.predict().share(row.pair.b)
        assert row.score_b == pytest.approx(float(sb.scores()[row.pair.b]))


def test_each_card_side_equals_explain_alone_and_captum(card_comparison, cards,
                                                        astronaut_path):
    c, sessions = card_comparison
    for side, session, card in ((c.a, sessions[0], cards.smp), (c.b, sessions[1], cards.hf)):
        model = session.model
        targets = ",".join(str(k) for k in side.result.targets)
        alone = explain(ExplainRequest(image=str(astronaut_path), model=str(card),
                                       device="cpu", segments="class", targets=targets),
                        model=model)
        for k in alone.targets:
            np.testing.assert_array_equal(alone.gradcam.raw[k], side.result.gradcam.raw[k])
            np.testing.assert_array_equal(alone.sweep.attribution_map(k),
                                          side.result.sweep.attribution_map(k))
        # Captum's own calls on the same wrapped model: Grad-CAM, and feature ablation
        # with the common segments as the feature mask
        x = session.input
        out_max = session.class_map_tensor
        wrapper = make_wrapper(model.logits, Aggregation(), out_max)
        h, w = session.image.shape
        lgc = LayerGradCam(wrapper, model.layer())
        sweep = side.common_sweep
        mask = torch.as_tensor(sweep.segments.ids).view(1, 1, h, w)
        for k in side.result.targets:
            theirs = lgc.attribute(x.clone().requires_grad_(True), target=k)
            assert_close(side.result.gradcam.raw[k], theirs[0, 0])
            assert_close(side.result.gradcam.upsampled[k],
                         LayerAttribution.interpolate(theirs, (h, w))[0, 0])
            fa = FeatureAblation(wrapper).attribute(x, feature_mask=mask, target=k)
            assert_close(side.common_maps["ablation"].maps[k], fa[0, 0])


def test_the_cli_compares_two_cards_of_different_sizes(tmp_path, cards, astronaut_path):
    out = tmp_path / "cards"
    code = main(["compare", str(astronaut_path), "--model", str(cards.smp), "--with",
                 str(cards.hf), "--device", "cpu", "--methods", "gradcam", "--out", str(out),
                 "--resample-maps", "bilinear", "-q"])
    assert code == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["classes"] == {"shared": ["background", "road", "car"], "only_a": [],
                                 "only_b": ["person", "tree"]}
    assert report["resample"]["attribution_maps"] == "bilinear"
    assert report["a"]["working_size"] != report["b"]["working_size"]
    assert report["scores_comparable"] is False and "score_per_pixel" in report["scores_note"]
    assert report["a"]["layers"] == {"gradcam": "encoder.layer4.1.conv2"}
    assert "common_segments" not in report  # no segment method was asked for
    for entry in report["per_class"]:
        if entry["known_to"] == "both":
            assert set(entry["maps"]) == {"gradcam"} and 0 <= entry["iou"] <= 1
        else:
            assert entry["iou"] is None and entry["maps"] == {}


def test_b_takes_a_layer_only_if_it_has_it(blocks_image):
    image = load_image(blocks_image)
    a = _request(blocks_image, "tiny", "untrained", layer="body.0", methods=("gradcam",))
    pair = load_pair(a, a, image, layer_b_given=False)
    assert pair.request_b.layer == "body.0" and pair.notes == ()
    colour = _request(blocks_image, "colour", "untrained", layer="body.0",
                      methods=("gradcam",))
    pair = load_pair(a, colour, image, layer_b_given=False)
    assert pair.request_b.layer is None
    assert "B uses its default layer features" in pair.notes[0]
    with pytest.raises(UserError, match="^B .*body.0"):
        load_pair(a, colour, image, layer_b_given=True)


# -- bad pairs --------------------------------------------------------------------------------
def _cli_fails(capfd, out: Path, args: list[str], words: str) -> str:
    code = main(["compare", *args, "--device", "cpu", "--size", "32", "--out", str(out)])
    err = capfd.readouterr().err.strip()
    assert code == 1, err
    assert err.count("\n") == 0 and err.startswith("segexplorer: error:"), err
    assert words in err and "Traceback" not in err
    assert not out.exists()
    return err


def test_two_models_with_no_class_in_common_are_refused(tmp_path, blocks_image, cards, capfd):
    _cli_fails(capfd, tmp_path / "out", [str(blocks_image), "--model", "tiny", "--weights",
                                         "untrained", "--with", str(cards.strangers)],
               "no class name in common")


def test_a_card_that_fails_is_refused_naming_the_side(tmp_path, blocks_image, cards, capfd):
    _cli_fails(capfd, tmp_path / "out", [str(blocks_image), "--model", "tiny", "--weights",
                                         "untrained", "--with", str(cards.broken)],
               "B (--with")


def test_a_pair_the_memory_budget_cannot_hold_is_refused(tmp_path, blocks_image, capfd):
    # the two tiny models alone take 13.7 KiB: a 10 KiB budget (--gpu-memory, in GiB)
    # cannot hold them, on the CPU as on a GPU
    _cli_fails(capfd, tmp_path / "out", [str(blocks_image), "--model", "tiny", "--weights",
                                         "untrained", "--with", "tiny", "--with-weights",
                                         "untrained", "--gpu-memory", repr(10 / 2**20)],
               "do not fit on cpu")


def test_the_budget_from_the_environment_refuses_a_pair_too(tmp_path, blocks_image, capfd,
                                                            monkeypatch):
    monkeypatch.setenv(ENV_VAR, repr(10 / 2**20))
    line = _cli_fails(capfd, tmp_path / "out",
                      [str(blocks_image), "--model", "tiny", "--weights", "untrained",
                       "--with", "tiny", "--with-weights", "untrained"], "do not fit on cpu")
    assert f"memory budget 10.0 KiB ({ENV_VAR})" in line


def test_pair_memory_counts_both_models_and_the_larger_pass(blocks_image, monkeypatch):
    a = load_model("tiny", "untrained", "cpu")
    b = load_model("colour", "untrained", "cpu")
    params = sum(p.numel() * 4 for p in a.module.parameters())
    assert model_bytes(a) == params
    monkeypatch.setenv(ENV_VAR, "1")
    memory = pair_memory(a, b, (48, 64), (96, 128), torch.device("cpu"))
    assert memory.budget.limit == 2**30 and memory.budget.source == ENV_VAR and memory.fits
    assert memory.needed == memory.a_bytes + memory.b_bytes + max(memory.a_pass,
                                                                  memory.b_pass)
    # a pass at twice the side takes four times the memory (the probe is scaled)
    bigger = pair_memory(a, b, (96, 128), (96, 128), torch.device("cpu"))
    assert bigger.a_pass == pytest.approx(4 * memory.a_pass, rel=0.01)
    exact = MemoryBudget(memory.needed, "cpu", "--gpu-memory")
    assert pair_memory(a, b, (48, 64), (96, 128), torch.device("cpu"), budget=exact).fits
    refused = pair_memory(a, b, (48, 64), (96, 128), torch.device("cpu"),
                          budget=MemoryBudget(memory.needed - 1, "cpu", "--gpu-memory"))
    assert not refused.fits
    with pytest.raises(UserError, match="A .* and B .* of parameters and buffers.*"
                                        "memory budget .*--gpu-memory"):
        refused.check()
    monkeypatch.delenv(ENV_VAR)
    default = pair_memory(a, b, (48, 64), (96, 128), torch.device("cpu"))
    assert default.budget == resolve_budget("cpu") or default.budget.source.startswith(
        "default")


def test_the_pair_s_sessions_chunk_under_the_pair_s_budget(blocks_image):
    from segexplorer.engine.analysis import ExplainRequest

    a = ExplainRequest(image=str(blocks_image), model="tiny", weights="untrained",
                       device="cpu", size=48, gpu_memory=0.5)
    b = replace(a, model="colour")
    pair = load_pair(a, b, load_image(blocks_image))
    assert pair.memory.budget.limit == 2**29 and pair.memory.budget.source == "--gpu-memory"
    assert all(s.budget == pair.memory.budget for s in pair.sessions())


# -- the pure parts ------------------------------------------------------------------------------
def test_classes_match_ignoring_case_spaces_and_underscores():
    m = match_classes(("__background__", "Potted Plant", "cat"), ("background", "potted_plant",
                                                                  "dog"))
    assert [(p.name, p.a, p.b) for p in m.shared] == [("__background__", 0, 0),
                                                      ("Potted Plant", 1, 1)]
    assert [p.name for p in m.only_a] == ["cat"] and [p.name for p in m.only_b] == ["dog"]
    with pytest.raises(UserError, match="no class name in common"):
        match_classes(("a",), ("b",))


def test_nearest_resampling_takes_the_pixel_under_each_centre():
    a = np.arange(4).reshape(1, 4)
    np.testing.assert_array_equal(to_grid(a, (1, 8)), [[0, 0, 1, 1, 2, 2, 3, 3]])
    np.testing.assert_array_equal(to_grid(a, (1, 2)), [[1, 3]])
    np.testing.assert_array_equal(to_grid(np.ones((3, 3)), (2, 5), "bilinear"),
                                  np.ones((2, 5)))
    with pytest.raises(UserError, match="resampling"):
        to_grid(a, (2, 2), "cubic")


def _prediction(class_map: np.ndarray, categories: tuple[str, ...]) -> Prediction:
    h, w = class_map.shape
    return Prediction(image=np.zeros((h, w, 3), np.uint8),
                      logits=np.zeros((len(categories), h, w), np.float32),
                      class_map=class_map.astype(np.int64), categories=categories)


def test_common_segments_are_the_intersection_of_both_predictions():
    a = _prediction(np.array([[0, 0, 1, 1], [0, 0, 1, 1]]), ("bg", "cat"))
    b = _prediction(np.array([[0, 1, 1, 1], [0, 0, 0, 1]]), ("bg", "cat"))
    common = common_segments(a, b, (2, 4))
    pairs = {(s.a_classes, s.b_classes): s.pixels for s in common.info}
    assert pairs == {((0,), (0,)): 3, ((0,), (1,)): 1, ((1,), (0,)): 1, ((1,), (1,)): 3}
    components = common_segments(a, b, (2, 4), "component")
    assert components.count == 4
    on_half = common.on((1, 2), "a")  # a working grid of half the size, by nearest
    assert on_half.ids.shape == (1, 2) and {s.class_index for s in on_half.info} <= {0, 1}


def test_label_sets_hold_overlapping_masks():
    """A multi-label prediction's masks may overlap or leave a pixel in no class: label
    sets (and so changed pixels and common segments) come from the masks alone."""

    @dataclass(frozen=True)
    class Overlapping(Prediction):
        def mask(self, cls: int) -> np.ndarray:
            return np.array([[1, 1, 0], [0, 0, 0]], bool) if cls == 0 else \
                np.array([[0, 1, 1], [0, 0, 0]], bool)

        @property
        def present_classes(self) -> list[int]:
            return [0, 1]

    p = Overlapping(image=np.zeros((2, 3, 3), np.uint8), logits=np.zeros((2, 2, 3)),
                    class_map=np.zeros((2, 3), np.int64), categories=("tumour", "core"))
    sets = label_sets(p)
    assert [sets.sets[i] for i in sets.ids[0]] == [(0,), (0, 1), (1,)]
    assert sets.sets[sets.ids[1, 0]] == ()


def test_targets_are_named_in_both_models_or_indexed_in_a():
    a = _prediction(np.array([[0, 1]]), ("bg", "cat", "dog"))
    b = _prediction(np.array([[0, 0]]), ("BG", "dog", "bird"))
    m = match_classes(a.categories, b.categories)
    assert [p.name for p in resolve_targets(m, a, b, "all")] == ["bg", "cat"]
    assert resolve_targets(m, a, b, "Dog,1") == (ClassPair("dog", 2, 1), ClassPair("cat", 1,
                                                                                   None))
    with pytest.raises(UserError, match="neither model knows"):
        resolve_targets(m, a, b, "unicorn")


def test_changed_pixels_are_drawn_in_their_transition_colour():
    image = np.full((2, 3, 3), 200, np.uint8)
    transitions = np.array([[-1, 0, 1], [1, -1, -1]])
    colors = transition_colors(2)
    rgba = changed_pixels_rgba(image, transitions, colors)
    assert (rgba[0, 1, :3] == colors[0]).all() and (rgba[1, 0, :3] == colors[1]).all()
    assert (rgba[0, 0, :3] == 150).all()  # unchanged: the image in dimmed grey
    assert (colors[0] != colors[1]).any()


def test_rows_are_flat_for_a_table(self_comparison):
    rows = self_comparison.rows()
    assert len(rows) == len(self_comparison.classes)
    assert {"class", "known_to", "share_a", "share_b", "iou", "score_a", "score_b",
            "gradcam_spearman", "ablation_mean_abs_difference"} <= set(rows[0])
    assert "activation_spearman" not in rows[0]  # the same map for every class


def test_a_click_names_the_common_segment_under_it():
    a = _prediction(np.array([[0, 0, 1, 1], [0, 0, 1, 1]]), ("bg", "cat"))
    b = _prediction(np.array([[0, 1, 1, 1], [0, 0, 0, 1]]), ("bg", "cat"))
    common = common_segments(a, b, (2, 4))
    assert (common.at(1, 0).a_classes, common.at(1, 0).b_classes) == ((0,), (1,))
    with pytest.raises(UserError, match="outside"):
        common.at(4, 0)


DOCS = Path(__file__).resolve().parents[1] / "docs" / "compare"


def test_the_documented_example_changes_only_nuclei_pixels(tmp_path):
    """docs/compare.md's worked example (the stain card and a copy with its 'nuclei' row
    scaled): pixels change only to or from nuclei, and 'stain', whose mask does not
    change, keeps its score and its maps exactly."""
    image = Path(__import__("skimage").__file__).parent / "data" / "ihc.png"
    model = load_model(DOCS / "stain.toml", None, "cpu")
    state = model.module.state_dict()
    state["head.weight"][2] *= 1.6
    tweaked = tmp_path / "stain_nuclei_x1.6.pt"
    torch.save(state, tweaked)
    a = ExplainRequest(image=str(image), model=str(DOCS / "stain.toml"), device="cpu",
                       size=128)
    c, _ = _compare(image, a, ExplainRequest(**{**a.__dict__, "weights": str(tweaked)}))
    assert c.transitions and all("nuclei" in t.before + t.after for t in c.transitions)
    stain = c.row("stain")
    assert stain.iou == 1.0 and stain.score_a == stain.score_b
    assert all(s.max_abs_difference == 0.0 for s in stain.maps.values())
    assert c.row("nuclei").maps["gradcam"].mean_difference > 0  # B weighs nuclei 1.6x


def test_shapley_values_on_the_common_segments_equal_captums(blocks_image):
    """Both models' Shapley values are computed on the common segments, each on its own
    working grid (24 and 32 px here): each equals Captum's ShapleyValueSampling (the same
    permutations: the same seed) with that feature mask on that model."""
    from captum.attr import ShapleyValueSampling

    options = {"methods": ("shapley",), "shapley_mode": "sampling", "n_samples": 3,
               "seed": 7}
    a = _request(blocks_image, "colour", "untrained", size=24, **options)
    b = _request(blocks_image, "colour", "untrained", size=32, **options)
    c, sessions = _compare(blocks_image, a, b)
    assert c.common is not None and c.common.count > 3  # the grids disagree at edges
    for side, session in ((c.a, sessions[0]), (c.b, sessions[1])):
        maps = side.common_maps["shapley"]
        h, w = session.image.shape
        wrapper = make_wrapper(session.model.logits, Aggregation(), session.class_map_tensor)
        mask = torch.as_tensor(maps.shapley.segments.rows_map()).view(1, 1, h, w)
        for k in side.result.targets:
            torch.manual_seed(7)
            theirs = ShapleyValueSampling(wrapper).attribute(
                session.input, feature_mask=mask, target=k, n_samples=3)
            assert_close(maps.maps[k], theirs[0, 0])
    assert all(row.maps["shapley"].segments >= 5 for row in c.classes)


def test_a_name_listed_twice_is_matched_by_its_first_index():
    m = match_classes(("bg", "cat", "cat"), ("BG", "cat"))
    assert [(p.name, p.a, p.b) for p in m.pairs] == [("bg", 0, 0), ("cat", 1, 1)]
    assert m.of("a", 2) == m.of("a", 1)


def test_a_target_neither_model_predicts_gets_a_row_without_overlap(blocks_image, capsys):
    request = _request(blocks_image, "tiny", "untrained", targets="aeroplane,sofa",
                       methods=("gradcam",))
    c, (sa, _) = _compare(blocks_image, request, request, targets="aeroplane,sofa")
    assert 1 not in sa.predict().present_classes
    row = c.row("aeroplane")
    assert row.iou is None and row.change == 0.0 and row.share_a == 0.0
    assert row.maps["gradcam"].pixels == 0 and row.maps["gradcam"].spearman is None


# -- what the window reuses and adds: earlier results, ablating in both ---------------------------
def _same_comparison(x, y) -> None:
    assert [r.name for r in x.classes] == [r.name for r in y.classes]
    assert x.rows() == y.rows()
    for row in x.classes:
        for method in x.methods:
            for side in ("a", "b"):
                mx, my = x.map_on_grid(side, method, row.pair), y.map_on_grid(side, method,
                                                                              row.pair)
                assert (mx is None) == (my is None)
                if mx is not None:
                    np.testing.assert_array_equal(mx, my)


def test_results_computed_before_are_reused_and_give_the_same_comparison(
        blocks_image, scaled_weights):
    from segexplorer.engine.compare_run import Computed
    from segexplorer.engine.segments import make_segments

    a = _request(blocks_image, "tiny", "untrained")
    b = _request(blocks_image, "tiny", str(scaled_weights))
    fresh, _ = _compare(blocks_image, a, b)
    pair = load_pair(a, b, load_image(blocks_image))
    sa, sb = pair.sessions()
    # what the window holds for A: Grad-CAM of the classes A predicts, and its sweep
    gradcam = sa.gradcam(None)
    sweep = sa.sweep(make_segments(sa.predict().class_map, "class"))
    assert set(gradcam.raw) == set(sa.predict().present_classes)
    passes = sa.forward_passes
    reused = compare_sessions(sa, sb, pair.request_a, pair.request_b,
                              computed_a=Computed(gradcam, sweep))
    _same_comparison(fresh, reused)
    # A's own sweep was not run again: only the Grad-CAM of the classes B alone predicts
    # (one pass) and the common segments' sweep
    common = reused.common
    assert common is not None
    extra = sa.forward_passes - passes
    assert extra <= 1 + len(common.on(sa.image.shape, "a").info)


def test_ablating_in_both_removes_the_same_common_segment_from_each_model(
        scaled_comparison):
    from segexplorer.engine.compare_run import ablate_both

    c, (sa, sb) = scaled_comparison
    common = c.common
    assert common is not None
    seg = max(common.info, key=lambda s: s.pixels)
    both = ablate_both(sa, sb, common, [seg.id], baseline="zero")
    for side, session in (("a", sa), ("b", sb)):
        alone = session.ablate(common.on(session.image.shape, side), [seg.id],
                               baseline="zero")
        outcome = both.outcome(side)
        assert outcome is not None
        np.testing.assert_array_equal(outcome.after, alone.after)
        np.testing.assert_array_equal(outcome.class_map_after, alone.class_map_after)
        np.testing.assert_array_equal(outcome.before, session.scores())
    # the scores moved as the common sweeps say (Captum's sign: before - after)
    for side, sweep in (("a", c.a.common_sweep), ("b", c.b.common_sweep)):
        row = sweep.segments.row_of()[seg.id]
        outcome = both.outcome(side)
        np.testing.assert_allclose(outcome.before - outcome.after, sweep.table[row],
                                   rtol=1e-5, atol=1e-4)


def test_a_drawn_region_is_ablated_in_both_models_each_on_its_own_grid(blocks_image,
                                                                        scaled_weights):
    from segexplorer.engine.compare import region
    from segexplorer.engine.compare_run import ablate_both

    a = _request(blocks_image, "tiny", "untrained")
    b = _request(blocks_image, "tiny", str(scaled_weights), size=32)
    pair = load_pair(a, b, load_image(blocks_image))
    sa, sb = pair.sessions()
    mask = np.zeros((96, 128), bool)
    mask[10:50, 20:70] = True
    drawn = region(mask)
    assert drawn.at(30, 20).id == 1 and drawn.at(0, 0).id == 0
    both = ablate_both(sa, sb, drawn, [1])
    for side, session in (("a", sa), ("b", sb)):
        inside = to_grid(mask, session.image.shape)
        outcome = both.outcome(side)
        assert outcome is not None and outcome.segment_ids == (1,)
        np.testing.assert_array_equal(both.segments(side).mask([1]), inside)
        # only the region's pixels are ablated: the complement's ablation shows the input
        # where the region's shows the baseline, and the other way round
        from segexplorer.engine.image import denormalize

        again = session.ablate(both.segments(side), [0])
        shown = denormalize(session.input, session.image.normalization)
        np.testing.assert_array_equal(outcome.ablated_input[~inside], shown[~inside])
        np.testing.assert_array_equal(again.ablated_input[inside], shown[inside])
        colour = outcome.ablated_input[inside][0]
        assert (outcome.ablated_input[inside] == colour).all()
        assert (again.ablated_input[~inside] == colour).all()
    with pytest.raises(UserError):
        ablate_both(sa, sb, drawn, [])
