"""Multi-label models (one sigmoid per class): overlapping masks, their scores, and every
method on them, with known answers (issue 24).

The model is ``tests/multilabel_models.py``'s hand-built colour detectors on a scene whose
rectangles overlap, so the masks are known before the model runs: red, green, yellow (red
and green), blue, white (all three), and a dark grey background in no class. Every method
is compared with Captum's own call on a wrapper written here from the definition (the
score of class c is the sum of z_c over z_c > 0 in the original prediction), for every
class; an smp Unet card with ``outputs = "multilabel"`` goes through every method and
``batch``; and the guard that tells a softmax card's user that the model looks
multi-label fires on trained multi-label models and never on trained softmax ones.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from captum.attr import (
    FeatureAblation,
    GuidedGradCam,
    IntegratedGradients,
    LayerActivation,
    LayerAttribution,
    LayerGradCam,
    LayerIntegratedGradients,
    Occlusion,
    ShapleyValues,
    ShapleyValueSampling,
)
from multilabel_models import CLASSES, LABEL_SETS, build_multilabel_cards, known_masks, scene
from parity import assert_close
from PIL import Image

from segexplorer.cli import main
from segexplorer.engine.aggregation import Aggregation, make_wrapper
from segexplorer.engine.attribution import compute
from segexplorer.engine.cards import read_card
from segexplorer.engine.errors import UserError
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.methods import METHODS, MethodOptions
from segexplorer.engine.models import load_model
from segexplorer.engine.outputs import HINT_LOGIT
from segexplorer.engine.segments import NO_CLASS_SEGMENT, label_set_segments
from segexplorer.engine.session import Session
from segexplorer.render import class_outlines, mask_layers, multilabel_overlay


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    return build_multilabel_cards(tmp_path_factory.mktemp("multilabel"))


def session_for(card, image, size=None) -> Session:
    model = load_model(card, None, "cpu")
    prepared = preprocess(load_image(image), size or model.default_size, model.normalization)
    return Session(model, prepared)


@pytest.fixture(scope="module")
def detectors(cards) -> Session:
    session = session_for(cards.multilabel, cards.image)
    assert np.array_equal(session.image.rgb, scene())  # 30 px: the scene itself
    return session


def multilabel_score(model, x: torch.Tensor):
    """The definition, written here: class c's score is the sum of z_c over the pixels
    where the original prediction's z_c > 0 (kept when the input is perturbed)."""
    with torch.no_grad():
        keep = (model.logits(x) > 0).float()

    def score(inp: torch.Tensor) -> torch.Tensor:
        return (model.logits(inp) * keep).sum(dim=(2, 3))

    return score


class Scored(torch.nn.Module):
    """The score function as a module (GuidedGradCam wants one)."""

    def __init__(self, model, x):
        super().__init__()
        self.net = model.module
        self.fn = multilabel_score(model, x)

    def forward(self, inp):
        return self.fn(inp)


# ------------------------------------------------------------------------------- cards
def test_outputs_default_to_softmax_and_a_one_channel_model_stays_binary(cards, card_models):
    assert read_card(cards.softmax).outputs is None
    assert load_model(cards.softmax, None, "cpu").outputs == "softmax"
    assert load_model(card_models.binary, None, "cpu").outputs == "binary"
    model = load_model(cards.multilabel, None, "cpu")
    assert (model.outputs, model.threshold, model.threshold_logit) == ("multilabel", 0.5, 0.0)
    strict = load_model(cards.strict, None, "cpu")
    assert strict.threshold == 0.9 and strict.threshold_logit == pytest.approx(2.1972246)
    assert model.describe()["outputs"] == "multilabel"


def test_the_models_command_says_what_the_outputs_are(cards, capsys):
    assert main(["models", str(cards.strict)]) == 0
    out = capsys.readouterr().out
    assert "outputs:" in out and "multilabel (one sigmoid per class, present where p > 0.9" in out
    assert main(["models", str(cards.softmax)]) == 0
    assert "softmax (default; [model] outputs sets it)" in capsys.readouterr().out


INCONSISTENT = {
    # what the card says: the one line's fragment (read, or when the model is built)
    'outputs = "sigmoid"': 'outputs = \'sigmoid\' is unknown',
    'threshold = 0.3': 'threshold applies to outputs = "multilabel" only',
    'outputs = "multilabel"\nthreshold = 1.5': "threshold must be a probability",
    'outputs = "binary"': 'outputs = "binary" is one output channel',  # 3 names
    'outputs = "binary"\nclasses = ["x"]': 'outputs = "binary" but the model outputs 3 channels',
}


@pytest.mark.parametrize("extra", list(INCONSISTENT))
def test_inconsistent_outputs_are_refused_in_one_line(cards, extra):
    text = cards.multilabel.read_text().replace('outputs = "multilabel"\n', "")
    if "classes" in extra:
        text = text.replace('classes = ["red", "green", "blue"]\n', "")
    card = cards.root / "inconsistent.toml"
    card.write_text(text.replace("[model]\n", f"[model]\n{extra}\n"), encoding="utf-8")
    with pytest.raises(UserError) as error:
        load_model(card, None, "cpu")
    message = str(error.value)
    assert INCONSISTENT[extra] in message and "\n" not in message and card.name in message


def test_softmax_for_a_one_channel_model_is_refused(card_models, tmp_path):
    card = tmp_path / "one.toml"
    card.write_text(card_models.binary.read_text().replace(
        "[model]\n", '[model]\noutputs = "softmax"\n').replace(
        'factory = "', f'factory = "{card_models.root}/'), encoding="utf-8")
    with pytest.raises(UserError, match='outputs = "softmax" but the model outputs 1 channel'):
        load_model(card, None, "cpu")


# ------------------------------------------------------------------------------- masks
def test_masks_are_the_colour_regions_with_their_overlaps_and_no_class_pixels(detectors):
    pred = detectors.predict()
    expected = known_masks()
    assert pred.outputs == "multilabel" and pred.multilabel
    np.testing.assert_array_equal(pred.masks, expected)
    assert pred.class_masks() is pred.masks
    for c in range(3):
        np.testing.assert_array_equal(pred.mask(c), expected[c])
    # the model's own z > 0
    with torch.no_grad():
        z = detectors.model.logits(detectors.input)[0].numpy()
    np.testing.assert_array_equal(pred.masks, z > 0)
    # overlaps: yellow is red and green; white is all three; the background is in none
    assert pred.mask(0)[12, 16] and pred.mask(1)[12, 16] and not pred.mask(2)[12, 16]
    assert pred.masks[:, 3, 33].all() and not pred.masks[:, 0, 0].any()
    counts = expected.sum(axis=(1, 2))
    np.testing.assert_array_equal(pred.pixel_counts, counts)
    assert pred.present_classes == [1, 0, 2]  # green 360, red 335, blue 104 pixels
    assert [pred.share(c) for c in range(3)] == [counts[c] / 1200 for c in range(3)]
    assert pred.no_class_share == LABEL_SETS[()] / 1200
    both = pred.overlap_counts()
    assert both[0, 1] == both[1, 0] == 64 + 40 and both[0, 2] == both[1, 2] == 40
    np.testing.assert_array_equal(np.diag(both), counts)


def test_the_display_map_gives_no_class_its_own_value_and_never_a_class(detectors):
    pred = detectors.predict()
    nothing = ~known_masks().any(axis=0)
    assert pred.no_class == 3
    np.testing.assert_array_equal(pred.class_map == 3, nothing)
    # elsewhere: a class present there, the largest logit (the first on ties)
    z = pred.logits
    for y, x in zip(*np.nonzero(~nothing)):
        present = np.flatnonzero(pred.masks[:, y, x])
        assert pred.class_map[y, x] == present[np.argmax(z[present, y, x])]
    colours = pred.display_colors
    assert colours.shape == (4, 3) and tuple(colours[3]) == (0, 0, 0)
    assert not (pred.colors == 0).all(axis=1).any()  # no class is drawn black by default


def test_hovering_lists_every_class_present_with_its_own_probability(detectors):
    pred = detectors.predict()
    yellow = pred.describe_pixel(16, 12)
    assert [p.cls for p in yellow] == [0, 1]
    for p in yellow:
        assert p.score == pytest.approx(float(pred.logits[p.cls, 12, 16]))
        assert p.probability == pytest.approx(1 / (1 + np.exp(-p.score)))
    assert len(pred.describe_pixel(33, 3)) == 3  # white: all three
    assert pred.describe_pixel(0, 0) == ()  # background: no class
    dim = pred.describe_pixel(25, 2)  # dim red: present, p about 0.73
    assert [p.cls for p in dim] == [0] and 0.5 < dim[0].probability < 0.9


def test_a_threshold_moves_every_mask_to_p_above_it(cards):
    session = session_for(cards.strict, cards.image)
    pred = session.predict()
    np.testing.assert_array_equal(pred.masks, known_masks(0.9))  # the dim red is gone
    assert not pred.mask(0)[2, 25] and pred.describe_pixel(25, 2) == ()
    np.testing.assert_array_equal(pred.masks, pred.logits > np.float32(np.log(0.9 / 0.1)))


# ------------------------------------------------------------------------------ scores
def test_the_score_of_a_class_is_the_sum_of_its_logit_over_its_own_mask(detectors):
    pred = detectors.predict()
    scores = detectors.scores()
    for c in range(3):
        expected = float(pred.logits[c][pred.masks[c]].astype(np.float64).sum())
        assert scores[c] == pytest.approx(expected, rel=1e-6)
    theirs = multilabel_score(detectors.model, detectors.input)(detectors.input)[0].numpy()
    assert_close(scores, theirs)
    wrapper = make_wrapper(detectors.model.logits, Aggregation(), detectors.selection_tensor)
    np.testing.assert_array_equal(wrapper(detectors.input)[0].numpy(), scores)


# ---------------------------------------------------------------------------- segments
def test_segments_partition_the_image_by_label_set_and_its_components(detectors):
    pred = detectors.predict()
    by_set = pred.segments("class")
    assert by_set.label_sets and by_set.partition.startswith("label set")
    assert [(s.classes, s.pixels) for s in by_set.info] == sorted(LABEL_SETS.items())
    assert [s.id for s in by_set.info] == list(range(6))
    assert by_set.info[0].class_index == NO_CLASS_SEGMENT
    assert by_set.info[0].name(CLASSES) == "no class"
    assert by_set.info[3].name(CLASSES) == "red + green + blue"
    # a partition: every pixel in exactly one segment, whose classes are its label set
    for s in by_set.info:
        where = by_set.ids == s.id
        assert where.sum() == s.pixels
        expected = np.zeros(3, bool)
        expected[list(s.classes)] = True
        assert (pred.masks[:, where] == expected[:, None]).all()
    components = pred.segments("component")
    assert components.partition.startswith("label-set component")
    red_only = [s for s in components.info if s.classes == (0,)]
    assert sorted(s.pixels for s in red_only) == [16, 27, 14 * 18 - 64]
    assert sum(s.pixels for s in components.info) == 1200
    assert len({s.id for s in components.info}) == components.count == 8
    with pytest.raises(UserError):
        label_set_segments(pred.masks[0])


@pytest.mark.parametrize("classes", [20, 70])  # an integer code per pixel; packed bytes
def test_label_sets_of_many_classes_give_the_same_partition(detectors, classes):
    masks = detectors.predict().masks
    wide = np.zeros((classes, *masks.shape[1:]), bool)
    spots = [0, classes // 2, classes - 1]  # the three classes, spread out
    wide[spots] = masks
    few, many = label_set_segments(masks, "component"), label_set_segments(wide, "component")
    np.testing.assert_array_equal(few.ids, many.ids)
    assert [tuple(spots[c] for c in s.classes) for s in few.info] == [
        s.classes for s in many.info]


# ---------------------------------------------------------------------------- methods
def test_every_method_equals_captum_on_the_multilabel_score_for_every_class(detectors):
    session, model = detectors, detectors.model
    x = session.input
    targets = [0, 1, 2]
    score = multilabel_score(model, x)
    layer = model.layer()
    segments = session.predict().segments("class")
    mask = torch.as_tensor(segments.ids).view(1, 1, 30, 40)
    options = MethodOptions(n_steps=4, window=10, stride=10, baseline="black",
                            shapley_mode="sampling", n_samples=2, seed=5)
    ours = {m: compute(session, m, targets, options) for m in METHODS}
    base = session.baseline_value("black")
    full_base = torch.zeros_like(x) + base
    for c in targets:
        gc = LayerGradCam(score, layer).attribute(x, target=c)
        assert_close(ours["gradcam"].raw[c], gc[0, 0])
        assert_close(ours["gradcam"].maps[c], LayerAttribution.interpolate(gc, (30, 40))[0, 0])
        act = LayerActivation(score, layer).attribute(x)
        assert_close(ours["activation"].raw[c], act.mean(dim=1)[0])
        fa = FeatureAblation(score).attribute(x, baselines=base, feature_mask=mask, target=c)
        assert_close(ours["ablation"].maps[c], fa[0, 0])
        torch.manual_seed(5)
        # a full-size baseline: Captum evaluates a scalar one at 1 x 1 for the empty coalition
        svs = ShapleyValueSampling(score).attribute(x, baselines=full_base, feature_mask=mask,
                                                     target=c, n_samples=2)
        assert_close(ours["shapley"].maps[c], svs[0, 0])
        occ = Occlusion(score).attribute(x, sliding_window_shapes=(3, 10, 10),
                                         strides=(3, 10, 10), baselines=base, target=c)
        assert_close(ours["occlusion"].maps[c], occ[0, 0])
        ig = IntegratedGradients(score).attribute(x, baselines=full_base, target=c, n_steps=4)
        assert_close(ours["ig"].maps[c], ig[0].sum(0))
        lig = LayerIntegratedGradients(score, layer).attribute(x, baselines=full_base,
                                                                target=c, n_steps=4)
        assert_close(ours["layer_ig"].raw[c], lig.sum(dim=1)[0])
        ggc = GuidedGradCam(Scored(model, x), layer).attribute(
            x.clone().requires_grad_(True), target=c)
        assert_close(ours["guided_gradcam"].maps[c], ggc[0].sum(0))
    # HiResCAM (not in Captum): gradient times activation, summed over channels
    captured = []
    handle = layer.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        scores = score(x.clone().requires_grad_(True))
    finally:
        handle.remove()
    for i, c in enumerate(targets):
        (grad,) = torch.autograd.grad(scores[0, c], captured[-1], retain_graph=i < 2)
        assert_close(ours["hirescam"].raw[c], (grad * captured[-1]).sum(dim=1)[0])


@pytest.mark.slow  # Captum's ShapleyValues walks all 720 orders (about 15 s)
def test_exact_shapley_of_the_label_sets_equals_shapley_values(detectors):
    session = detectors
    ours = compute(session, "shapley", [0, 1, 2], MethodOptions(shapley_mode="exact"))
    table = ours.shapley
    assert ours.forward == 2 ** 6 - 1 and table.segments.label_sets
    # efficiency: each class's values add up to its score minus the all-black image's
    np.testing.assert_allclose(table.values.sum(0), table.full_scores - table.empty_scores,
                               rtol=1e-5)
    mask = torch.as_tensor(table.segments.rows_map()).view(1, 1, 30, 40)
    sv = ShapleyValues(multilabel_score(session.model, session.input))
    theirs = sv.attribute(session.input, baselines=torch.zeros_like(session.input),
                          feature_mask=mask, target=2, perturbations_per_eval=120)
    assert_close(ours.maps[2], theirs[0, 0])  # Captum walks all 720 orders: one class


# ------------------------------------------------------------------- ablation and clicks
def test_the_sweep_keeps_each_class_mask_after_and_a_click_changes_label_sets(detectors):
    session, model = detectors, detectors.model
    pred = session.predict()
    segments = pred.segments("class")
    sweep = session.sweep(segments, baseline="black")
    assert sweep.after_label_sets is not None and sweep.after_label_sets.shape == (6, 1, 30, 40)
    for row, s in enumerate(segments.info):
        ablated = session.ablated_input(segments, [s.id], baseline="black")
        with torch.no_grad():
            z = model.logits(ablated)[0].numpy()
        np.testing.assert_array_equal(sweep.masks_after(row, 3), z > 0)  # the model's own
        outcome = session.ablate(segments, [s.id], baseline="black", sweep=sweep)
        fresh = session.ablate(segments, [s.id], baseline="black")
        assert outcome.from_cache and not fresh.from_cache
        np.testing.assert_array_equal(outcome.masks_after, z > 0)
        np.testing.assert_array_equal(fresh.masks_after, outcome.masks_after)
        np.testing.assert_array_equal(fresh.class_map_after, outcome.class_map_after)
        np.testing.assert_allclose(fresh.after, outcome.after, rtol=1e-6)
        # a pixel changed when its set of classes changed: blackened, a segment's
        # pixels lose every class, and no other pixel changes
        changed = (z > 0) != pred.masks
        np.testing.assert_array_equal(outcome.changed, changed.any(axis=0))
        np.testing.assert_array_equal(outcome.changed,
                                      (segments.ids == s.id) & pred.masks.any(axis=0))
    # the yellow segment ablated: red and green lose its 64 pixels, blue keeps its own
    yellow = next(s for s in segments.info if s.classes == (0, 1))
    outcome = session.ablate(segments, [yellow.id], baseline="black", sweep=sweep)
    np.testing.assert_array_equal(outcome.masks_after.sum(axis=(1, 2)),
                                  pred.pixel_counts - [64, 64, 0])


def test_explain_writes_outputs_shares_overlaps_and_the_partition(cards, tmp_path, capfd):
    out = tmp_path / "e"
    code = main(["explain", str(cards.image), "--model", str(cards.multilabel), "--device",
                 "cpu", "--methods", "gradcam,ablation", "--out", str(out)])
    err = capfd.readouterr().err
    assert code == 0 and "multi-label model" in err and "look multi-label" not in err
    report = json.loads((out / "report.json").read_text())
    counts = known_masks().sum(axis=(1, 2))
    assert report["outputs"] == "multilabel" and report["threshold"] == 0.5
    assert report["class_shares"] == {n: counts[c] / 1200 for c, n in enumerate(CLASSES)}
    assert report["no_class_share"] == LABEL_SETS[()] / 1200
    assert {(tuple(o["names"]), o["pixels"]) for o in report["overlaps"]} == {
        (("red", "green"), 104), (("red", "blue"), 40), (("green", "blue"), 40)}
    assert report["model_card"]["outputs"] == "multilabel"
    assert report["ablation"]["segments_partition"].startswith("label set")
    assert [s["classes"] for s in report["segments"]] == [list(k) for k in sorted(LABEL_SETS)]
    assert report["segments"][0]["class_name"] == "no class"
    assert "outputs_hint" not in report
    npz = np.load(out / "attributions.npz")
    np.testing.assert_array_equal(npz["masks"], known_masks().astype(np.uint8))
    drawn = np.asarray(Image.open(out / "segmentation.png").convert("RGBA"))
    colors = load_model(cards.multilabel, None, "cpu").colors
    np.testing.assert_array_equal(drawn, multilabel_overlay(scene(), known_masks(), colors))


def test_ablate_on_the_command_line_reports_label_sets_that_changed(cards, tmp_path):
    out = tmp_path / "a"
    assert main(["ablate", str(cards.image), "--model", str(cards.multilabel), "--device",
                 "cpu", "--at", "16,12", "--baseline", "black", "--out", str(out), "-q"]) == 0
    changes = json.loads((out / "changes.json").read_text())
    assert changes["outputs"] == "multilabel"
    assert changes["segments"][0]["classes"] == [0, 1]
    assert changes["segments"][0]["class_name"] == "red + green"
    assert changes["changed_pixel_fraction"] == 64 / 1200
    assert changes["changed_meaning"] == "pixels whose set of classes changed"
    counts = known_masks().sum(axis=(1, 2))
    assert changes["class_shares_after"] == {
        n: (counts[c] - (64 if c < 2 else 0)) / 1200 for c, n in enumerate(CLASSES)}
    assert "red" in changes["summary"] and "green" in changes["summary"]
    changed = np.asarray(Image.open(out / "changed_pixels.png").convert("RGB"))
    assert (changed[10:18, 14:22] == (255, 0, 255)).all()
    assert (changed.reshape(-1, 3) == (255, 0, 255)).all(axis=1).sum() == 64


def test_evaluation_scores_the_multilabel_masks_and_keeps_them_when_randomised(cards,
                                                                              detectors,
                                                                              tmp_path):
    from segexplorer.engine.evaluation import evaluate, randomised_models
    from segexplorer.engine.evaluation_plan import EvaluationSettings

    settings = EvaluationSettings(pixel_steps=3, chance_runs=1, mprt_steps=1,
                                  infidelity_samples=1, sensitivity_samples=1)
    result = evaluate(detectors, ["gradcam"], [0, 1], settings=settings)
    np.testing.assert_array_equal(result.original_scores, detectors.scores())
    report = result.to_json()["settings"]
    assert report["segments"]["partition"].startswith("label set")
    assert report["outputs"] == "multilabel" and "own mask" in report["score"]
    assert "argmax" not in report["score"]
    # a randomised model's session is scored on the original prediction's masks
    _name, _i, random_model = next(randomised_models(detectors.model, 1, 0))
    derived = detectors.derive(model=random_model)
    np.testing.assert_array_equal(derived.predict().masks, detectors.predict().masks)
    np.testing.assert_array_equal(derived.selection_tensor, detectors.selection_tensor)
    out = tmp_path / "ev"
    assert main(["evaluate", str(cards.image), "--model", str(cards.multilabel), "--device",
                 "cpu", "--methods", "gradcam", "--pixel-steps", "2", "--chance-runs", "1",
                 "--no-mprt", "--no-infidelity", "--no-sensitivity", "--out", str(out),
                 "-q"]) == 0


def test_batch_summary_carries_outputs_shares_and_overlaps(cards, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(scene()).save(folder / "scene.png")
    Image.fromarray(np.ascontiguousarray(scene()[:, ::-1])).save(folder / "mirrored.png")
    out = tmp_path / "b"
    assert main(["batch", str(folder), "--model", str(cards.multilabel), "--device", "cpu",
                 "--methods", "gradcam,ablation", "--out", str(out), "-q"]) == 0
    rows = pq.read_table(out / "summary.parquet").to_pylist()
    counts = known_masks().sum(axis=(1, 2))
    assert len(rows) == 6 and {r["outputs"] for r in rows} == {"multilabel"}
    for row in rows:
        c = row["class_index"]
        assert row["share"] == counts[c] / 1200 and row["pixels"] == counts[c]
        overlaps = {k: row[k] for k in ("overlap_0_red", "overlap_1_green", "overlap_2_blue")}
        expected = {0: {"overlap_1_green": 104 / 1200, "overlap_2_blue": 40 / 1200},
                    1: {"overlap_0_red": 104 / 1200, "overlap_2_blue": 40 / 1200},
                    2: {"overlap_0_red": 40 / 1200, "overlap_1_green": 40 / 1200}}[c]
        assert overlaps == {**{k: None for k in overlaps if k.endswith(CLASSES[c])},
                            **expected}
        # a label-set segment counts for each of its classes
        assert {"delta_0_red", "delta_1_green", "delta_2_blue"} <= set(row)


# ----------------------------------------------------------------------- smp, multilabel
@pytest.fixture(scope="module")
def smp_multilabel(card_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("smp_ml")
    card = root / "unet_multilabel.toml"
    card.write_text(f'''[model]
source = "smp"
architecture = "Unet"
encoder = "resnet18"
weights = "{card_models.root / 'smp' / 'unet.safetensors'}"
classes = ["whole", "core", "enhancing"]
outputs = "multilabel"

[preprocess]
size = 40

[explain]
layer = "encoder.layer4.1.conv2"
''', encoding="utf-8")
    return card


def test_an_smp_unet_multilabel_card_through_every_method(smp_multilabel, astronaut_path):
    session = session_for(smp_multilabel, astronaut_path)
    model, x = session.model, session.input
    pred = session.predict()
    with torch.no_grad():
        z = model.logits(x)[0].numpy()
    np.testing.assert_array_equal(pred.masks, z > 0)  # the model's own z > 0
    assert pred.multilabel and (pred.overlap_counts() > 0).all()  # they overlap here
    assert pred.hint == ""
    targets = [0, 1, 2]
    options = MethodOptions(n_steps=2, window=20, stride=20, n_samples=2,
                            shapley_mode="sampling")
    ours = {m: compute(session, m, targets, options) for m in METHODS}
    h, w = session.image.shape
    for m, maps in ours.items():
        for c in targets:
            assert maps.maps[c].shape == (h, w) and np.isfinite(maps.maps[c]).all(), m
    score = multilabel_score(model, x)
    layer = model.layer()
    mask = torch.as_tensor(pred.segments("class").ids).view(1, 1, h, w)
    for c in targets:
        gc = LayerGradCam(score, layer).attribute(x, target=c)
        assert_close(ours["gradcam"].raw[c], gc[0, 0])
        assert_close(ours["ig"].maps[c],
                     IntegratedGradients(score).attribute(x, target=c, n_steps=2)[0].sum(0))
        assert_close(ours["occlusion"].maps[c],
                     Occlusion(score).attribute(x, sliding_window_shapes=(3, 20, 20),
                                                strides=(3, 20, 20), target=c)[0, 0])
        assert_close(ours["ablation"].maps[c],
                     FeatureAblation(score).attribute(x, feature_mask=mask, target=c)[0, 0])


def test_an_smp_unet_multilabel_card_through_batch(smp_multilabel, astronaut_path, coffee_path,
                                                   tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in (astronaut_path, coffee_path):
        with Image.open(path) as image:
            image.convert("RGB").resize((48, 40)).save(folder / path.name)
    out = tmp_path / "b"
    assert main(["batch", str(folder), "--model", str(smp_multilabel), "--device", "cpu",
                 "--methods", "gradcam,ablation,occlusion", "--window", "20", "--stride",
                 "20", "--out", str(out), "-q"]) == 0
    rows = pq.read_table(out / "summary.parquet").to_pylist()
    assert rows and {r["outputs"] for r in rows} == {"multilabel"}
    for key in {r["image"] for r in rows}:
        report = json.loads((out / "images" / key / "report.json").read_text())
        assert report["outputs"] == "multilabel"
        shares = report["class_shares"]
        for r in (r for r in rows if r["image"] == key):
            assert r["share"] == shares[r["class"]]


# ------------------------------------------------------------------------------ the hint
def test_a_softmax_card_on_a_multilabel_model_prints_the_hint_once(cards, tmp_path, capfd):
    session = session_for(cards.softmax, cards.image)
    pred = session.predict()
    assert pred.outputs == "softmax" and 'outputs = "multilabel"' in pred.hint
    assert pred.masks is None and pred.class_map.max() == 2  # the result is unchanged
    one_hot = pred.class_masks()  # softmax: one class per pixel
    assert (one_hot.sum(axis=0) == 1).all()
    np.testing.assert_array_equal(one_hot[1], pred.mask(1))
    assert pred.overlap_counts()[0, 1] == 0 and pred.no_class_share == 0
    out = tmp_path / "e"
    assert main(["explain", str(cards.image), "--model", str(cards.softmax), "--device", "cpu",
                 "--methods", "gradcam", "--out", str(out)]) == 0
    err = capfd.readouterr().err
    hints = [line for line in err.splitlines() if "look multi-label" in line]
    assert len(hints) == 1 and 'outputs = "multilabel"' in hints[0]
    assert json.loads((out / "report.json").read_text())["outputs_hint"] == pred.hint


def test_the_hint_fires_on_a_trained_multilabel_model_under_a_softmax_card(cards):
    pred = session_for(cards.trained_multilabel, cards.image).predict()
    assert pred.outputs == "softmax" and pred.hint
    assert (pred.logits.max(axis=0) < HINT_LOGIT).mean() > 0.4  # the background


def test_a_trained_softmax_model_never_gets_the_hint(cards, motorcycle_path, astronaut_path):
    trained = session_for(cards.trained_softmax, cards.image)
    pred = trained.predict()
    assert pred.hint == ""
    # cross-entropy moves the winner above the class mean: every pixel's largest logit
    # is clearly positive, and the model learnt the scene
    assert pred.logits.max(axis=0).min() > 0
    single = np.zeros((30, 40), np.int64)
    for c in range(3):
        single[known_masks()[c]] = c + 1
    np.testing.assert_array_equal(pred.class_map, single)
    for image in (motorcycle_path, astronaut_path):  # other images: still no hint
        assert session_for(cards.trained_softmax, image, 40).predict().hint == ""
    # untrained weights say nothing about how a model was trained: no hint either
    fcn = load_model("fcn_resnet50", "untrained", "cpu")
    assert Session(fcn, preprocess(load_image(motorcycle_path), 32)).predict().hint == ""


# ------------------------------------------------------------------------------ drawing
def test_mask_layers_mix_colours_where_classes_overlap_and_leave_no_class_clear():
    masks = np.zeros((2, 2, 3), bool)
    masks[0, :, :2] = True  # class 0: columns 0-1
    masks[1, :, 1:] = True  # class 1: columns 1-2 (column 1: both)
    colors = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)
    layers = mask_layers(masks, colors, opacity=0.5)
    assert tuple(layers[0, 0]) == (255, 0, 0, 128)
    assert tuple(layers[0, 2]) == (0, 0, 255, 128)
    # both: blue over red at 0.5 each: premultiplied (64, 0, 128) at alpha 0.75
    assert tuple(layers[0, 1]) == (85, 0, 170, 191)
    assert tuple(mask_layers(masks, colors, 0.5, visible=[0])[0, 2]) == (0, 0, 0, 0)
    image = np.full((2, 3, 3), 100, np.uint8)
    drawn = multilabel_overlay(image, masks, colors, 0.5, outlines=False)
    assert tuple(drawn[0, 0]) == (178, 50, 50, 255)  # half red over grey
    nothing = np.zeros((2, 2, 3), bool)
    np.testing.assert_array_equal(multilabel_overlay(image, nothing, colors)[..., :3], image)


def test_class_outlines_draw_each_class_boundary_in_its_colour(detectors):
    pred = detectors.predict()
    outlines = class_outlines(pred.masks, pred.colors)
    blue = pred.colors[2]
    # the blue patch (rows 20-27, columns 2-9): its border ring in blue, its inside clear
    assert (outlines[20, 2:10, :3] == blue).all() and (outlines[20, 2:10, 3] == 255).all()
    assert (outlines[21:27, 3:9, 3] == 0).all()
    hidden = class_outlines(pred.masks, pred.colors, visible=[0, 1])
    assert (hidden[20, 2:10, 3] == 0).all()
