"""Several images per pass (issue 21): same-shape images share the prediction's pass and
Grad-CAM's, and each image's results equal its own pass's.

On this CPU a batch of images gives every image bit-identical logits and gradients to its
own pass (docs/scale.md); the tests allow the parity tolerance (1e-5 relative), which is
what is promised wherever kernels may depend on the batch (CUDA in fp32). Batching is
forced on the CPU through the same mechanism a GPU uses by default: the most images per
pass (``--images-per-pass``, ``images_per_pass``) under the memory budget.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from batch_models import (
    image_folders,
    journal_keys,
    report_without_timings,
    skimage_photo,
    write_cards,
)
from parity import assert_close
from PIL import Image

from segexplorer.batch.run import BatchOptions, run_batch
from segexplorer.cli import main
from segexplorer.engine.analysis import ExplainRequest
from segexplorer.engine.budget import MemoryBudget
from segexplorer.engine.errors import Cancelled, UserError
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.models import load_model
from segexplorer.engine.session import (
    Session,
    gradcam_together,
    images_per_pass,
    predict_together,
)

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
          "retina.jpg")
HUGE = 1 << 40


def same_shape_folder(folder, count: int, size=(60, 44)):
    """``count`` crops of scikit-image's photos, all ``size`` pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        with Image.open(skimage_photo(PHOTOS[i % len(PHOTOS)])) as image:
            rgb = image.convert("RGB")
        w, h = rgb.size
        rgb.crop((i * 9, i * 5, w - i * 3, h - i * 7)).resize(size).save(folder / f"{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return same_shape_folder(tmp_path_factory.mktemp("together") / "photos", 5)


@pytest.fixture(scope="module", params=["tiny", "colour"])
def model(request):
    return load_model(request.param, "untrained", "cpu")


def sessions_of(model, photos, budget: MemoryBudget | None = None) -> list[Session]:
    return [Session(model, preprocess(load_image(p), 40), budget=budget)
            for p in sorted(photos.iterdir())]


class Calls:
    """Counts the model's calls and the images each took."""

    def __init__(self, model) -> None:
        self.sizes: list[int] = []
        self.handle = model.module.register_forward_hook(
            lambda _m, inputs, _o: self.sizes.append(int(inputs[0].shape[0])))

    def __enter__(self) -> Calls:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


# --------------------------------------------------------------------------- the engine


def test_images_sharing_grad_cams_pass_get_what_their_own_pass_gives(model, photos):
    alone = sessions_of(model, photos)
    own = [s.gradcam() for s in alone]
    together = sessions_of(model, photos, MemoryBudget(HUGE, "cpu", "test"))
    with Calls(model) as calls:
        shared = gradcam_together(together, [None] * len(together), most=len(together))
    assert max(calls.sizes) > 1, "the images did not share a pass"
    for one, many, a, b in zip(alone, together, own, shared):
        assert_close(many.predict().logits, one.predict().logits)
        assert np.array_equal(many.predict().class_map, one.predict().class_map)
        assert sorted(b.upsampled) == sorted(a.upsampled) == sorted(
            one.predict().present_classes)
        for cls in a.upsampled:
            assert_close(b.raw[cls], a.raw[cls])
            assert_close(b.upsampled[cls], a.upsampled[cls])
        assert_close(b.activation_upsampled, a.activation_upsampled)
        assert b.activation_shape == a.activation_shape
        assert b.backward_passes == a.backward_passes
        # each image counts its own work, as if it had been alone
        assert (many.forward_images, many.forward_calls, many.backward_images) == (
            one.forward_images, one.forward_calls, one.backward_images)


def test_images_sharing_the_prediction_s_pass_get_their_own_prediction(model, photos):
    alone = sessions_of(model, photos)
    together = sessions_of(model, photos, MemoryBudget(HUGE, "cpu", "test"))
    with Calls(model) as calls:
        predict_together(together, most=4)
    assert max(calls.sizes) > 1 and sum(calls.sizes) == len(together)
    for one, many in zip(alone, together):
        assert_close(many.predict().logits, one.predict().logits)
        assert np.array_equal(many.predict().class_map, one.predict().class_map)
        assert_close(many.scores(), one.scores())
        assert many.forward_images == 1


def test_the_images_per_pass_come_from_the_memory_budget(photos):
    """The first pass measures one image; then as many as the budget holds, at most
    ``most``; a budget below one image sends them one by one; results are the same."""
    tiny = load_model("tiny", "untrained", "cpu")
    reference = [s.gradcam() for s in sessions_of(tiny, photos)]
    memory: dict[str, int] = {}
    with Calls(tiny) as calls:
        gradcam_together(sessions_of(tiny, photos, MemoryBudget(HUGE, "cpu", "t")),
                         [None] * 5, most=3, memory=memory)
    assert calls.sizes == [1, 3, 1]  # a probe of one image, then chunks of at most 3
    assert list(memory.values()) and all(v > 0 for v in memory.values())
    with Calls(tiny) as calls:  # measured before: no probe
        found = gradcam_together(sessions_of(tiny, photos, MemoryBudget(HUGE, "cpu", "t")),
                                 [None] * 5, most=3, memory=memory)
    assert calls.sizes == [3, 2]
    per_image = next(iter(memory.values()))
    with Calls(tiny) as calls:  # a budget for two images
        gradcam_together(sessions_of(tiny, photos, MemoryBudget(2 * per_image, "cpu", "t")),
                         [None] * 5, most=3, memory=memory)
    assert calls.sizes == [2, 2, 1]
    with Calls(tiny) as calls:  # below one image: one at a time
        gradcam_together(sessions_of(tiny, photos, MemoryBudget(1, "cpu", "t")),
                         [None] * 5, most=3, memory=memory)
    assert calls.sizes == [1] * 5
    for a, b in zip(reference, found):
        for cls in a.upsampled:
            assert_close(b.upsampled[cls], a.upsampled[cls])


def test_one_pass_per_call_on_a_cpu_unless_asked():
    tiny = load_model("tiny", "untrained", "cpu")
    assert images_per_pass(tiny, "fp32") == 1
    assert images_per_pass(tiny, "bf16") == 1
    assert images_per_pass(tiny, "fp32", asked=6) == 6
    with pytest.raises(UserError, match="--images-per-pass 0"):
        images_per_pass(tiny, "fp32", asked=0)


def test_only_same_shape_images_of_one_model_share_a_pass(photos, tmp_path):
    tiny = load_model("tiny", "untrained", "cpu")
    image = load_image(next(photos.iterdir()))
    with pytest.raises(ValueError, match="one shape"):
        gradcam_together([Session(tiny, preprocess(image, 40)),
                          Session(tiny, preprocess(image, 48))], [None, None], most=2)


# --------------------------------------------------------------------------- the batch


def assert_close_numbers(ours, theirs, where: str = "") -> None:
    """The same structure; numbers equal to the parity tolerance (of the largest one)."""
    def numbers(values) -> bool:
        return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                    for v in values)

    if isinstance(theirs, dict):
        assert sorted(ours) == sorted(theirs), where
        if numbers(list(theirs.values())):  # a table of numbers: to its largest one
            assert_close(np.array([ours[k] for k in sorted(theirs)], np.float64),
                         np.array([theirs[k] for k in sorted(theirs)], np.float64))
            return
        for key in theirs:
            assert_close_numbers(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), where
        if numbers(theirs) or (theirs and all(isinstance(v, list) and numbers(v)
                                              for v in theirs)):
            assert_close(np.array(ours, np.float64), np.array(theirs, np.float64))
            return
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_close_numbers(a, b, f"{where}[{i}]")
    elif isinstance(theirs, float):  # a lone number: to its own size
        assert np.isclose(ours, theirs, rtol=1e-5, atol=1e-6), (where, ours, theirs)
    else:
        assert ours == theirs, where


def assert_same_to_rounding(ours, theirs) -> None:
    """Two batch folders hold the same results to the parity tolerance: the same journal
    keys and files; class maps and segmentations equal; every array, report number and
    summary number within 1e-5 of its largest magnitude; heat-map PNGs within one colour
    level (a float's last bits can round a colour the other way)."""
    assert sorted(journal_keys(ours)) == sorted(journal_keys(theirs))
    a, b = pq.read_table(ours / "summary.parquet"), pq.read_table(theirs / "summary.parquet")
    assert a.column_names == b.column_names and a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a.column(name).to_numpy(zero_copy_only=False), \
            b.column(name).to_numpy(zero_copy_only=False)
        if x.dtype.kind == "f":
            assert np.array_equal(np.isnan(x), np.isnan(y)), name
            assert_close(np.nan_to_num(x), np.nan_to_num(y))
        else:
            assert list(x) == list(y), name
    folders, expected = image_folders(ours), image_folders(theirs)
    assert sorted(folders) == sorted(expected)
    for key, folder in folders.items():
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(p.name for p in expected[key].iterdir())
        for name in names:
            mine, other = folder / name, expected[key] / name
            if name.endswith(".png"):
                x = np.asarray(Image.open(mine)).astype(int)
                y = np.asarray(Image.open(other)).astype(int)
                assert x.shape == y.shape
                if name == "segmentation.png":
                    assert np.array_equal(x, y), key
                else:
                    assert np.abs(x - y).max() <= 1, (key, name)
            elif name.endswith(".npz"):
                za, zb = np.load(mine), np.load(other)
                assert sorted(za.files) == sorted(zb.files)
                for array in za.files:
                    if za[array].dtype.kind == "f":
                        assert_close(za[array], zb[array])
                    else:
                        assert np.array_equal(za[array], zb[array]), (key, array)
            elif name == "report.json":
                assert_close_numbers(report_without_timings(mine),
                                     report_without_timings(other), key)


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    return write_cards(tmp_path_factory.mktemp("together_cards"))


def batch(photos, cards, out, *extra) -> int:
    return main(["batch", str(photos), "--model", str(cards.fast), "--device", "cpu",
                 "--out", str(out), "-q", *[str(e) for e in extra]])


@pytest.fixture(scope="module")
def one_by_one(tmp_path_factory, photos, cards):
    out = tmp_path_factory.mktemp("together_single") / "out"
    assert batch(photos, cards, out, "--images-per-pass", "1") == 0
    return out


def images_in_pass(out) -> list[float]:
    return sorted(json.loads(p.read_text("utf-8"))["timings_seconds"].get("images_in_pass", 1)
                  for p in (out / "images").rglob("report.json"))


def test_a_batch_sharing_passes_writes_each_image_s_files_as_one_image_runs(
        photos, cards, one_by_one, tmp_path):
    out = tmp_path / "out"
    assert batch(photos, cards, out, "--images-per-pass", "4") == 0
    assert max(images_in_pass(out)) == 4  # the passes were shared
    assert_same_to_rounding(out, one_by_one)  # every file, the tables, the journal
    # the arrays and the report hold the numbers explain gives for the image alone
    assert main(["explain", str(photos / "02.png"), "--model", str(cards.fast),
                 "--device", "cpu", "--out", str(tmp_path / "alone"), "-q"]) == 0
    alone = np.load(tmp_path / "alone" / "attributions.npz")
    shared = np.load(out / "images" / "02.png" / "attributions.npz")
    assert sorted(alone.files) == sorted(shared.files)
    for key in alone.files:
        if alone[key].dtype.kind == "f":
            assert_close(shared[key], alone[key])
        else:
            assert np.array_equal(shared[key], alone[key]), key


def test_a_stopped_batch_sharing_passes_resumes_to_the_uninterrupted_files(
        photos, cards, one_by_one, tmp_path):
    class StopAfterTwo:
        done = 0

        def set_progress(self, done: int, total: int, message: str = "") -> None:
            self.done = done

        def is_cancelled(self) -> bool:
            return self.done >= 2

    out = tmp_path / "out"
    request = ExplainRequest(image="", model=str(cards.fast), device="cpu")
    from segexplorer.batch.progress import StateProgress

    state = StopAfterTwo()
    with pytest.raises(Cancelled):
        run_batch(BatchOptions(str(photos), str(out), request, images_per_pass=3),
                  StateProgress(state), state)
    assert 2 <= len(journal_keys(out)) < 5
    assert batch(photos, cards, out, "--images-per-pass", "2") == 0  # continued
    assert_same_to_rounding(out, one_by_one)


def test_images_per_pass_below_one_is_refused_in_one_line(photos, cards, tmp_path, capfd):
    assert batch(photos, cards, tmp_path / "out", "--images-per-pass", "0") != 0
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["segexplorer: --images-per-pass 0: use at least 1."] or \
        err[-1].endswith("--images-per-pass 0: use at least 1.")
    assert not (tmp_path / "out").exists()

