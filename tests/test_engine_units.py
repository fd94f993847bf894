"""Engine pieces on a tiny model: segments, progress and cancellation, ablation, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from segexplorer.engine.ablation import ablate_at_points, summary_line, to_working
from segexplorer.engine.aggregation import Aggregation
from segexplorer.engine.baselines import parse_baseline
from segexplorer.engine.devices import available_devices, resolve_device
from segexplorer.engine.errors import Cancelled, UserError
from segexplorer.engine.image import preprocess
from segexplorer.engine.models import load_model, normalize_layer_path
from segexplorer.engine.segments import make_segments
from segexplorer.engine.session import Session


class RecordingState:
    def __init__(self, cancel_after: int | None = None) -> None:
        self.calls: list[tuple[int, int, str]] = []
        self.cancel_after = cancel_after

    def set_progress(self, done, total, message=""):
        self.calls.append((done, total, message))

    def is_cancelled(self):
        return self.cancel_after is not None and len(self.calls) > self.cancel_after


def red_square_image(size=64) -> Image.Image:
    arr = np.full((size, size, 3), 200, np.uint8)
    arr[8:24, 8:24] = (230, 20, 20)  # red square: class 1
    arr[40:56, 36:60] = (20, 220, 20)  # green block: class 2
    arr[40:48, 4:12] = (230, 20, 20)  # a second red piece
    return Image.fromarray(arr)


@pytest.fixture()
def colour_session():
    model = load_model("colour", "untrained", "cpu")
    return Session(model, preprocess(red_square_image(), 64))


def test_segments_by_class_and_component():
    class_map = np.array([[0, 0, 1, 1],
                          [0, 2, 2, 1],
                          [1, 0, 0, 0]])
    by_class = make_segments(class_map, "class")
    assert by_class.id_list == [0, 1, 2]
    assert [s.pixels for s in by_class.info] == [6, 4, 2]
    np.testing.assert_array_equal(by_class.ids, class_map)
    comp = make_segments(class_map, "component")
    # class 0: the left block and the bottom run touch at (0,0)-(1,0)-(2,1)? no: 4-connected
    assert comp.count == 5
    assert sorted(s.class_index for s in comp.info) == [0, 0, 1, 1, 2]
    assert sum(s.pixels for s in comp.info) == class_map.size
    for s in comp.info:
        assert np.all(class_map[comp.ids == s.id] == s.class_index)
    assert comp.at(3, 0).class_index == 1
    with pytest.raises(UserError):
        make_segments(class_map, "superpixels")


def test_colour_model_predicts_the_squares(colour_session):
    pred = colour_session.predict()
    assert pred.class_map[10, 10] == 1 and pred.class_map[45, 40] == 2
    assert pred.class_map[30, 30] == 0
    assert set(pred.present_classes) == {0, 1, 2}


def test_sweep_reports_progress_and_reads_every_target(colour_session):
    state = RecordingState()
    pred = colour_session.predict()
    segments = make_segments(pred.class_map, "component")
    sweep = colour_session.sweep(segments, state=state)
    assert sweep.ablated_scores.shape == (segments.count, 21)
    assert state.calls[-1][:2] == (segments.count, segments.count)
    assert [d for d, _, _ in state.calls] == list(range(segments.count + 1))
    # ablating a red piece removes its share of class 1's score, and nothing of class 2's
    red_pieces = [s for s in segments.info if s.class_index == 1]
    assert len(red_pieces) == 2
    for piece in red_pieces:
        row = segments.row_of()[piece.id]
        assert sweep.table[row, 1] > 0
        assert sweep.table[row, 2] == pytest.approx(0.0, abs=1e-4)
    # an ablated red pixel takes the ImageNet mean colour, whose class-1 score is
    # 4 * (0.485 - (0.456 + 0.406) / 2) = 0.216
    total = sum(sweep.table[segments.row_of()[p.id], 1] for p in red_pieces)
    red_pixels = sum(p.pixels for p in red_pieces)
    assert red_pixels == 16 * 16 + 8 * 8
    assert total == pytest.approx(sweep.initial_scores[1] - 0.216 * red_pixels, rel=1e-4)


def test_sweep_can_be_cancelled_between_chunks(colour_session):
    segments = make_segments(colour_session.predict().class_map, "component")
    state = RecordingState(cancel_after=2)
    with pytest.raises(Cancelled):
        colour_session.sweep(segments, state=state)
    # the session is still usable afterwards and gives the right answer
    sweep = colour_session.sweep(segments)
    assert np.all(np.isfinite(sweep.table))


def test_gradcam_can_be_cancelled(colour_session):
    with pytest.raises(Cancelled):
        colour_session.gradcam([0, 1, 2], state=RecordingState(cancel_after=1))


def test_ablate_red_square_removes_its_class(colour_session):
    session = colour_session
    outcome, segments = ablate_at_points(session, [(12.0, 12.0)], "component")
    assert outcome.class_map_after[10, 10] == 0  # the square is now background
    assert outcome.class_map_after[44, 6] == 1  # the other red piece is untouched
    assert outcome.delta[1] < 0
    assert outcome.delta[2] == pytest.approx(0.0, abs=1e-4)
    assert 0 < outcome.changed_fraction < 0.1
    np.testing.assert_array_equal(outcome.ablated_input[12, 12], [124, 116, 104])  # mean colour
    line = summary_line(session.predict(), outcome, segments)
    assert line.startswith("aeroplane -") and "% of pixels changed class" in line


def test_single_click_after_sweep_is_served_from_cache(colour_session):
    session = colour_session
    pred = session.predict()
    segments = make_segments(pred.class_map, "class")
    sweep = session.sweep(segments)
    passes = session.forward_passes
    cached = session.ablate(segments, [1], sweep=sweep)
    assert cached.from_cache and session.forward_passes == passes
    fresh = session.ablate(segments, [1])
    assert not fresh.from_cache and session.forward_passes == passes + 1
    np.testing.assert_array_equal(cached.after, fresh.after)
    np.testing.assert_array_equal(cached.class_map_after, fresh.class_map_after)
    # the per-class deltas of one segment are FeatureAblation's row, negated
    np.testing.assert_allclose(cached.delta, -sweep.table[segments.row_of()[1]], rtol=1e-6)
    # another baseline is not in the cache
    assert not session.ablate(segments, [1], baseline="black", sweep=sweep).from_cache


def test_points_map_from_original_to_working_coordinates(motorcycle_path):
    from segexplorer.engine.image import load_image

    model = load_model("tiny", "untrained", "cpu")
    session = Session(model, preprocess(load_image(motorcycle_path), 50))  # 741x500 -> 74x50
    assert session.image.shape == (50, 74)
    assert to_working(session, 0, 0) == (0, 0)
    assert to_working(session, 740.9, 499.9) == (73, 49)
    assert to_working(session, 741 / 2, 250) == (37, 25)
    assert to_working(session, 741 / 74 * 10 - 0.01, 10) == (9, 1)
    with pytest.raises(UserError, match="outside"):
        to_working(session, 741, 10)


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert available_devices()[-1] == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(UserError, match="Unknown device"):
        resolve_device("tpu")


def test_layer_paths_and_options():
    assert normalize_layer_path("backbone.layer4[2].conv3") == "backbone.layer4.2.conv3"
    with pytest.raises(UserError):
        Aggregation("median")
    with pytest.raises(UserError):
        Aggregation("region", region=np.zeros((4, 4), bool))
    assert parse_baseline("#FF8000").rgb == (255, 128, 0)
    assert parse_baseline("10, 20,30").label == "#0a141e"
    with pytest.raises(UserError):
        parse_baseline("300,0,0")
    model = load_model("tiny", "untrained", "cpu")
    with pytest.raises(UserError, match="does not exist"):
        model.layer("body.9")


def test_untrained_weights_are_seeded_and_labelled():
    a = load_model("tiny", "untrained", "cpu")
    b = load_model("tiny", "untrained", "cpu")
    for pa, pb in zip(a.module.parameters(), b.module.parameters()):
        assert torch.equal(pa, pb)
    assert a.untrained and "untrained" in a.weights_label
    assert not any(p.requires_grad for p in a.module.parameters())


def test_out_of_memory_halves_the_chunk_and_finishes(colour_session, monkeypatch):
    session = colour_session
    segments = make_segments(session.predict().class_map, "component")
    reference = session.sweep(segments, chunk_size=1)
    module = session.model.module
    original_forward = module.forward
    seen_batches = []

    def forward_with_small_memory(x):
        seen_batches.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return original_forward(x)

    monkeypatch.setattr(module, "forward", forward_with_small_memory)
    sweep = session.sweep(segments, chunk_size=8)
    first = min(8, segments.count)
    assert seen_batches[:2] == [first, first // 2]  # the chunk that failed, halved
    assert sweep.chunk_size == 2  # the largest chunk that went through, not the one tried
    assert sum(sweep.batches) == segments.count and max(sweep.batches) == 2
    assert reference.batches == (1,) * segments.count
    np.testing.assert_array_equal(sweep.ablated_scores, reference.ablated_scores)
    np.testing.assert_array_equal(sweep.after_maps, reference.after_maps)


def test_strict_fp32_switches_tf32_off_and_restores_it():
    from segexplorer.engine.session import strict_fp32

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
        with strict_fp32():
            assert not torch.backends.cudnn.allow_tf32
            assert not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
        with pytest.raises(ValueError), strict_fp32():
            raise ValueError("a model call that fails")
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_out_of_memory_at_batch_one_is_a_clear_message(colour_session, monkeypatch):
    session = colour_session
    segments = make_segments(session.predict().class_map, "class")

    def no_memory(x):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 123456789 bytes")

    monkeypatch.setattr(session.model.module, "forward", no_memory)
    with pytest.raises(UserError, match="Out of memory"):
        session.sweep(segments)


def test_fast_mode_bf16_is_close_to_fp32():
    model = load_model("tiny", "untrained", "cpu")
    prepared = preprocess(red_square_image(), 48)
    exact = Session(model, prepared)
    fast = Session(model, prepared, precision="bf16")
    segments = make_segments(exact.predict().class_map, "class")
    a = exact.sweep(segments)
    b = fast.sweep(segments)
    scale = np.abs(a.initial_scores).max()
    assert np.abs(a.initial_scores - b.initial_scores).max() < 0.05 * scale
    gc = fast.gradcam()
    assert all(m.dtype == np.float32 for m in gc.raw.values())
    with pytest.raises(UserError, match="precision"):
        Session(model, prepared, precision="fp8")


def test_layer_output_shapes():
    from segexplorer.engine.models import layer_output_shapes

    model = load_model("tiny", "untrained", "cpu")
    shapes = layer_output_shapes(model.module, torch.zeros(1, 3, 20, 30))
    assert shapes["body.0"] == (1, 8, 20, 30)
    assert shapes["body.2"] == (1, 16, 10, 15)
    assert shapes["head"] == (1, 21, 10, 15)


@pytest.mark.parametrize("baseline", ["zero", "black", "blur", "#3366cc"])
def test_displayed_ablated_input_is_the_models_input(baseline, astronaut_path):
    from segexplorer.engine.image import denormalize, load_image

    model = load_model("tiny", "untrained", "cpu")
    session = Session(model, preprocess(load_image(astronaut_path), 40))
    segments = make_segments(session.predict().class_map, "component")
    chosen = [s.id for s in segments.info[:2]]
    outcome = session.ablate(segments, chosen, baseline=baseline)
    expected = denormalize(session.ablated_input(segments, chosen, baseline=baseline))
    np.testing.assert_array_equal(outcome.ablated_input, expected)


def test_percent_format_keeps_small_changes_visible():
    from segexplorer.engine.ablation import format_percent

    assert format_percent(-0.8312, signed=True) == "-83 %"
    assert format_percent(-0.0023, signed=True) == "-0.2 %"
    assert format_percent(0.0, signed=True) == "+0 %"
    assert format_percent(0.123) == "12 %"
    assert format_percent(0.05) == "5.0 %"


@pytest.mark.parametrize("kind", ["class", "component"])
def test_segment_mask_equals_isin(kind):
    rng = np.random.default_rng(3)
    class_map = rng.integers(0, 21, size=(40, 57))
    class_map[5:25, 10:30] = 7  # one large region among noise
    segments = make_segments(class_map, kind)
    ids = segments.id_list
    for chosen in ([ids[0]], ids[1:4], [ids[-1], ids[0]], [ids[-1] + 5, -1], []):
        np.testing.assert_array_equal(segments.mask(chosen), np.isin(segments.ids, chosen))


def test_the_engine_names_its_public_api_and_loads_it_lazily():
    import subprocess
    import sys

    import segexplorer.engine as engine

    for name in engine.__all__:
        assert getattr(engine, name).__name__ == name
    done = subprocess.run([sys.executable, "-c", "import sys, segexplorer.engine\n"
                           "assert 'torch' not in sys.modules"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
