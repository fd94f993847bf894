"""The memory budget, on the CPU: every batched path chunks under it, with the same results.

The CUDA failures this would have caught (issue 22): counts that were model calls on a
GPU and images on a CPU (there every chunk held one image), integrated gradients sending
all its steps in one pass, chunks sized from the free memory. Here the same code runs on
the CPU with budgets that force chunks (a 1-byte budget: one image per call; a budget of
2.5 images: two per call), against a budget that takes everything in one call
(``max_batch`` lifts the CPU's own batch of one). Counts and order must be the same; the
maps the same bits on the ``colour`` model, whose layers give the same bits for an image
whatever batch it is in, so that any difference would be the engine's own arithmetic.
A convolution model (``tiny``, fcn_resnet50) agrees to float rounding: torch's CPU
convolution kernels give last-bit differences between batch sizes (measured:
docs/performance.md), as cuDNN's do on a GPU. Out-of-memory errors are simulated.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from parity import assert_close

from segexplorer.cli import main
from segexplorer.engine import budget as budget_module
from segexplorer.engine.attribution import compute
from segexplorer.engine.budget import (
    ENV_VAR,
    GIB,
    INFERENCE,
    MemoryBudget,
    gradient_kind,
    parse_gib,
    resolve_budget,
)
from segexplorer.engine.errors import UserError
from segexplorer.engine.evaluation import evaluate
from segexplorer.engine.evaluation_plan import (
    QUICK,
    QUICK_DESCRIPTION,
    EvaluationSettings,
    evaluation_cost,
)
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.methods import METHODS, ImageFacts, MethodOptions, method_cost
from segexplorer.engine.models import Architecture, load_model, register_architecture
from segexplorer.engine.segments import make_segments
from segexplorer.engine.session import Session

HUGE = 1 << 50
OPTIONS = MethodOptions(n_steps=7, window=12, stride=6, n_samples=3)
#: methods that send several images through the model, and the kind of pass they measure
BATCHED = {"ablation": INFERENCE, "shapley": INFERENCE, "occlusion": INFERENCE,
           "ig": gradient_kind("ig")}


def one_call(device: str = "cpu") -> MemoryBudget:
    """Everything in one call (the CPU's own batch of one lifted)."""
    return MemoryBudget(HUGE, device, "test: everything at once", max_batch=1 << 20)


def one_image() -> MemoryBudget:
    """One image per call: a budget smaller than any image."""
    return MemoryBudget(1, "cpu", "test: one byte", max_batch=1 << 20)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", "untrained", "cpu")


@pytest.fixture(scope="module")
def colour():
    return load_model("colour", "untrained", "cpu")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """48 x 64: three red and three green squares on grey (seven component segments for
    the colour model)."""
    from PIL import Image

    img = np.full((48, 64, 3), 128, np.uint8)
    for i, (y, x) in enumerate([(4, 4), (4, 24), (4, 44), (28, 4), (28, 24), (28, 44)]):
        img[y:y + 14, x:x + 14] = (220, 30, 30) if i % 2 == 0 else (30, 200, 40)
    path = tmp_path_factory.mktemp("budget") / "squares.png"
    Image.fromarray(img).save(path)
    return preprocess(load_image(path), 48)


def assert_rounding(actual: np.ndarray, expected: np.ndarray, name: str) -> None:
    """Equal to float32 rounding (a convolution's bits change with the batch size): the
    parity tests' 1e-5 of the largest magnitude."""
    assert_close(actual, expected)


def session_with(model, prepared, budget: MemoryBudget) -> Session:
    session = Session(model, prepared, budget=budget)
    session.predict()
    return session


# ----------------------------------------------------------------------------- the budget
def test_the_budget_is_the_setting_then_the_environment_then_the_device_default(monkeypatch):
    assert resolve_budget("cpu", 3, environ={ENV_VAR: "5"}).limit == 3 * GIB
    env = resolve_budget("cpu", environ={ENV_VAR: "5"})
    assert env.limit == 5 * GIB and env.source == ENV_VAR
    monkeypatch.setattr(budget_module, "available_memory", lambda: (12 * GIB, "free here"))
    cpu = resolve_budget("cpu", environ={})
    assert cpu.limit == 6 * GIB and "half of the 12.0 GiB" in cpu.source
    for card, expected in ((16, 8), (12, 6), (80, 8)):  # the smaller of 8 GiB and half
        monkeypatch.setattr(budget_module, "_cuda_total", lambda _name, c=card: c * GIB)
        gpu = resolve_budget("cuda:0", environ={})
        assert gpu.limit == expected * GIB and gpu.device == "cuda:0", card
    monkeypatch.setattr(budget_module, "available_memory", lambda: None)
    assert resolve_budget("mps", environ={}).limit == budget_module.UNKNOWN_DEFAULT


def test_the_machines_available_memory_is_read():
    found = budget_module.available_memory()
    assert found is not None and found[0] > 0


@pytest.mark.parametrize("value", ["0", "-2", "nan", "inf", "lots", "1e9"])
def test_a_bad_budget_is_one_line_naming_where_it_came_from(value):
    with pytest.raises(UserError, match="^--gpu-memory") as error:
        parse_gib(value)
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match=f"^{ENV_VAR}"):
        resolve_budget("cpu", environ={ENV_VAR: value})


def test_images_per_call_follow_the_budget_within_the_devices_batch():
    budget = MemoryBudget(10 * 1000, "cpu", "test")
    assert budget.images(1000, preferred=32) == 10
    assert budget.images(3000, preferred=32) == 3
    assert budget.images(3000, preferred=2) == 2  # never more than the device's batch
    assert budget.images(10 ** 9, preferred=32) == 1  # one image above the budget: one
    assert MemoryBudget(10 ** 6, "cpu", "t", max_batch=5).images(1, preferred=1) == 5


# ----------------------------------------------------------------------------- chunked paths
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model_name", ["colour", "tiny"])
def test_every_method_gives_the_same_maps_and_counts_for_any_budget(
        request, prepared, method, model_name):
    """One call, one image per call, two images per call: the same maps (the same bits
    where the model's layers are batch-invariant), in the same order, from the same
    number of images; the batched methods really ran in three chunks or more."""
    model = request.getfixturevalue(model_name)
    tiny = model  # (the name the body uses)
    options = OPTIONS.with_(segments="component")
    runs = {}
    for name, budget in (("one call", one_call()), ("one image", one_image())):
        session = session_with(tiny, prepared, budget)
        runs[name] = compute(session, method, None, options)
    # two images per call: the budget holds 2.5 images at the memory the first run measured
    session = session_with(tiny, prepared, one_call())
    compute(session, method, None, options)  # measures one image of its kind
    kind = BATCHED.get(method, INFERENCE)
    per_image = session.memory.image_memory(kind)
    if method in BATCHED:
        assert per_image is not None and per_image > 0
        session.budget = MemoryBudget(int(per_image * 2.5), "cpu", "test", max_batch=1 << 20)
        assert session.memory.chunk_for(kind) == 2
    runs["two images"] = compute(session, method, None, options)

    reference = runs["one call"]
    targets = session.predict().present_classes
    same = np.testing.assert_array_equal if model_name == "colour" else assert_rounding
    for name, maps in runs.items():
        assert list(maps.maps) == targets, name  # every class, in the same order
        for c in targets:
            same(maps.maps[c], reference.maps[c], name)
            if c in reference.raw:
                same(maps.raw[c], reference.raw[c], name)
        assert (maps.forward, maps.backward) == (reference.forward, reference.backward), name
        if reference.shapley is not None:
            assert maps.shapley is not None
            same(maps.shapley.values, reference.shapley.values, name)
    if method in BATCHED:
        n = reference.forward
        # the first chunk sized from the prediction's model of an image: all of them here
        assert reference.calls == 1
        assert runs["one image"].calls == n >= 3
        assert runs["two images"].calls == math.ceil(n / 2) >= 3


def test_layer_integrated_gradients_chunk_their_steps_too(colour, prepared):
    options = OPTIONS.with_(n_steps=6)
    whole = compute(session_with(colour, prepared, one_call()), "layer_ig", None, options)
    split = compute(session_with(colour, prepared, one_image()), "layer_ig", None, options)
    assert whole.calls == 2 + 1  # the layer on the image and the baseline, then the steps
    assert split.calls == 2 + 6
    for c in whole.maps:
        np.testing.assert_array_equal(split.maps[c], whole.maps[c])
        np.testing.assert_array_equal(split.raw[c], whole.raw[c])
    assert (split.forward, split.backward) == (whole.forward, whole.backward) == (
        8, 6 * len(whole.maps))


@pytest.mark.slow  # each new batch shape costs fcn_resnet50 on a CPU about a second
def test_a_real_architecture_agrees_in_chunks_and_is_exact_at_the_cpus_own_batch(
        motorcycle_path):
    """fcn_resnet50 (batch norm, dilated convolutions, in-place residual additions):
    occlusion and integrated gradients in one call and in one-image calls agree to float
    rounding; occlusion at the CPU's own batch of one gives the same bits for any budget."""
    model = load_model("fcn_resnet50", "untrained", "cpu")
    prepared = preprocess(load_image(motorcycle_path), 24)
    options = MethodOptions(n_steps=3, window=12, stride=12)  # 6 windows
    target = [Session(model, prepared).predict().present_classes[0]]
    for method in ("occlusion", "ig"):
        whole = compute(session_with(model, prepared, one_call()), method, target, options)
        split = compute(session_with(model, prepared, one_image()), method, target, options)
        assert split.calls >= 3 and whole.forward == split.forward, method
        for c in whole.maps:
            assert_rounding(split.maps[c], whole.maps[c], method)
    default = Session(model, prepared, budget=MemoryBudget(HUGE, "cpu", "test"))
    small = Session(model, prepared, budget=one_image())
    a, b = (compute(s, "occlusion", target, options) for s in (default, small))
    assert a.calls == b.calls == a.forward
    for c in a.maps:
        np.testing.assert_array_equal(a.maps[c], b.maps[c])


def test_the_evaluation_gives_the_same_bits_and_counts_for_any_budget(colour, prepared):
    tiny = colour
    settings = EvaluationSettings(pixel_steps=4, chance_runs=2, mprt_steps=2,
                                  infidelity_samples=3, sensitivity_samples=2)
    methods = ("gradcam", "ablation", "ig")
    options = MethodOptions(n_steps=3)
    whole = evaluate(session_with(tiny, prepared, one_call()), methods, None, options,
                     settings)
    split_session = session_with(tiny, prepared, one_image())
    calls = split_session.forward_calls
    split = evaluate(split_session, methods, None, options, settings)
    assert whole.images == split.images and whole.backward == split.backward
    # one image per call (the randomised models and noisy inputs are sessions of their own)
    own = split.images["maps"] + split.images["curves"] + split.images["infidelity"]
    assert split_session.forward_calls - calls == own
    for key, result in whole.results.items():
        other = split.results[key]
        for name, curve in result.curves.items():
            np.testing.assert_array_equal(other.curves[name].y, curve.y, err_msg=name)
        np.testing.assert_array_equal([s.spearman for s in other.mprt],
                                      [s.spearman for s in result.mprt])
        np.testing.assert_array_equal([other.infidelity, other.sensitivity_max],
                                      [result.infidelity, result.sensitivity_max])


def test_the_sweep_in_chunks_of_the_budget_equals_one_at_a_time(colour, prepared):
    session = session_with(colour, prepared, one_call())
    segments = make_segments(session.predict().class_map, "component")
    assert segments.count >= 5
    reference = session.sweep(segments, chunk_size=1)  # a chunk size given: no measurement
    assert session.memory.image_bytes is None  # (a CPU's prediction is modelled, not measured)
    first = session.sweep(segments)  # sized from the model: all at once, and measured
    assert first.batches == (segments.count,) and session.memory.image_bytes is not None
    session.budget = MemoryBudget(int(session.memory.image_bytes * 2.5), "cpu", "test",
                                  max_batch=64)
    sweep = session.sweep(segments)
    assert sweep.batches == (2,) * (segments.count // 2) + (1,) * (segments.count % 2)
    assert sweep.forward_passes == reference.forward_passes == segments.count  # images
    np.testing.assert_array_equal(sweep.ablated_scores, reference.ablated_scores)
    np.testing.assert_array_equal(sweep.after_maps, reference.after_maps)


def test_the_first_chunk_is_sized_from_the_predictions_model_then_from_measurement(
        colour, prepared):
    session = session_with(colour, prepared, one_call())
    modelled = session.memory.memory_facts().inference  # from the prediction's layer outputs
    assert modelled is not None and session.memory.image_bytes is None
    session.budget = MemoryBudget(int(modelled * 2.5), "cpu", "test", max_batch=1 << 20)
    segments = make_segments(session.predict().class_map, "component")
    first = session.sweep(segments)
    assert first.batches[0] == 2  # the model's figure, before anything was measured
    measured = session.memory.image_bytes
    assert measured is not None
    expected = max(1, min(segments.count, int(modelled * 2.5) // measured))
    assert session.sweep(segments).batches[0] == expected


def test_the_cpu_keeps_one_image_per_call_unless_told_otherwise(tiny, prepared):
    session = Session(tiny, prepared, budget=MemoryBudget(HUGE, "cpu", "test"))
    segments = make_segments(session.predict().class_map, "component")
    assert session.sweep(segments).batches == (1,) * segments.count
    h, w = session.image.shape
    assert session.memory.preferred_batch(gradient_kind("ig")) == min(64, (1 << 20) // (h * w))


def test_where_memory_cannot_be_measured_a_model_of_the_layers_sizes_serves(
        tiny, prepared, monkeypatch):
    monkeypatch.setattr(budget_module.PeakResident, "supported", staticmethod(lambda: False))
    session = session_with(tiny, prepared, one_call())
    compute(session, "ig", None, OPTIONS)
    compute(session, "occlusion", None, OPTIONS)
    h, w = session.image.shape
    least = (3 + tiny.num_classes) * h * w * 4
    gradient, inference = session.memory.image_memory(gradient_kind("ig")), session.memory.image_bytes
    assert gradient is not None and inference is not None
    assert gradient >= least and inference >= least
    assert gradient > inference  # the graph's outputs are kept


# ----------------------------------------------------------------------------- out of memory
def failing_above(module, limit: int, error: Exception, seen: list[int]):
    original = module.forward

    def forward(x):
        seen.append(int(x.shape[0]))
        if x.shape[0] > limit:
            raise error
        return original(x)

    return forward


CPU_OOM = RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                       "allocate memory: you tried to allocate 123456789 bytes")


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory (simulated)"),
                                   CPU_OOM], ids=["cuda", "cpu"])
def test_out_of_memory_halves_the_chunk_and_the_result_is_unchanged(
        colour, prepared, monkeypatch, error):
    tiny = colour
    for method in ("occlusion", "ig"):
        reference = compute(session_with(tiny, prepared, one_call()), method, None, OPTIONS)
        session = session_with(tiny, prepared, one_call())
        compute(session, method, None, OPTIONS)  # the memory is measured
        seen: list[int] = []
        monkeypatch.setattr(tiny.module, "forward",
                            failing_above(tiny.module, 2, error, seen))
        maps = compute(session, method, None, OPTIONS)
        monkeypatch.undo()
        attempts, k = [], reference.forward  # everything at once, then halved until it fits
        while k > 2:
            attempts.append(k)
            k //= 2
        assert len(attempts) >= 2 and seen[:len(attempts)] == attempts, method
        assert max(seen[len(attempts):]) <= 2 and maps.forward == reference.forward, method
        assert maps.backward == reference.backward  # failed attempts are not counted
        for c in reference.maps:
            np.testing.assert_array_equal(maps.maps[c], reference.maps[c], err_msg=method)


@pytest.mark.parametrize("method", ["occlusion", "ig", "gradcam", "guided_gradcam"])
def test_out_of_memory_at_one_image_is_one_clear_line(tiny, prepared, monkeypatch, method):
    session = session_with(tiny, prepared, one_call())
    monkeypatch.setattr(tiny.module, "forward", failing_above(tiny.module, 0, CPU_OOM, []))
    with pytest.raises(UserError, match=r"^Out of memory on cpu even with one .* at a time "
                                        r"\(memory budget .*\): use a smaller working size"):
        compute(session, method, None, OPTIONS)


def test_the_command_line_turns_out_of_memory_into_one_line(tmp_path, blocks_image, capsys):
    class NoMemory(torch.nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, n, 1)

        def forward(self, x):
            raise CPU_OOM

    register_architecture(Architecture("tiny_no_memory", build=lambda n: NoMemory(n),
                                       default_layer="conv", categories=("a", "b"),
                                       description="always out of memory"))
    code = main(["explain", str(blocks_image), "--model", "tiny_no_memory", "--weights",
                 "untrained", "--device", "cpu", "--size", "24", "--out",
                 str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "internal error" not in err and len(err.splitlines()) == 1
    assert err.startswith("segexplorer: Out of memory on cpu") or "Out of memory" in err


# ----------------------------------------------------------------------------- estimates
@pytest.mark.parametrize("budget", [one_call, one_image], ids=["one call", "one image"])
def test_each_estimate_counts_what_its_method_runs(tiny, prepared, budget):
    """The estimate before a run and the run's counts agree, in the same unit and
    words, whatever the chunks (the sampled Shapley count is an upper bound)."""
    session = session_with(tiny, prepared, budget())
    targets = session.predict().present_classes
    h, w = session.image.shape
    for segments_kind in ("class", "component"):
        options = OPTIONS.with_(segments=segments_kind, shapley_mode="auto")
        segments = make_segments(session.predict().class_map, segments_kind)
        facts = ImageFacts(h, w, segments.count, len(targets))
        for method in METHODS:
            estimate = method_cost(method, facts, options)
            ran = compute(session, method, targets, options)
            if method == "shapley" and "sampled" in estimate.detail:
                assert ran.forward <= estimate.forward
            else:
                assert ran.forward == estimate.forward, method
                assert ran.detail == estimate.detail, method  # the same words
            assert ran.backward == estimate.backward, method


def test_the_estimate_states_the_memory_of_the_chunks_the_run_takes(tiny, prepared):
    session = session_with(tiny, prepared, one_call())
    compute(session, "ig", None, OPTIONS)  # measures a gradient image
    per_image = session.memory.image_memory(gradient_kind("ig"))
    assert per_image is not None
    session.budget = MemoryBudget(int(per_image * 3.5), "cpu", "test", max_batch=1 << 20)
    h, w = session.image.shape
    targets = session.predict().present_classes
    facts = ImageFacts(h, w, 0, len(targets), memory=session.memory.memory_facts())
    estimate = method_cost("ig", facts, OPTIONS)
    assert estimate.memory is not None and estimate.memory.at_once == 3
    assert estimate.memory.bytes == 3 * per_image <= session.budget.limit
    assert "3 images at a time" in estimate.describe_memory()
    ran = compute(session, "ig", targets, OPTIONS)
    assert ran.calls == math.ceil(OPTIONS.n_steps / 3)
    tight = ImageFacts(h, w, 0, len(targets), memory=Session(
        tiny, prepared, budget=MemoryBudget(per_image // 2, "cpu", "t")).memory.memory_facts())
    assert method_cost("ig", tight, OPTIONS).memory is None  # nothing measured there yet


def test_after_the_prediction_alone_the_estimate_states_memory(tiny, prepared):
    """The window's cost line can state memory before any batched run: on a CPU modelled
    from the prediction's layer outputs ("roughly"), then measured ("about")."""
    session = session_with(tiny, prepared, MemoryBudget(HUGE, "cpu", "test"))
    h, w = session.image.shape
    facts = ImageFacts(h, w, 0, 2, memory=session.memory.memory_facts())
    occlusion = method_cost("occlusion", facts, OPTIONS)
    assert occlusion.memory is not None and not occlusion.memory.measured
    assert occlusion.memory.at_once == 1  # the CPU's own batch
    assert occlusion.describe_memory().startswith("memory: roughly ")
    ig = method_cost("ig", facts, OPTIONS)
    assert ig.memory is not None and not ig.memory.measured
    assert ig.memory.per_image > occlusion.memory.per_image  # the graph is kept
    assert ig.memory.at_once == OPTIONS.n_steps  # they all fit a huge budget at once
    compute(session, "occlusion", None, OPTIONS)
    measured = method_cost("occlusion", ImageFacts(h, w, 0, 2, memory=session.memory.memory_facts()),
                           OPTIONS)
    assert measured.memory is not None and measured.memory.measured
    assert measured.describe_memory().startswith("memory: about ")


def test_an_image_larger_than_the_budget_is_said_before_the_run(tiny, prepared):
    session = session_with(tiny, prepared, one_call())
    compute(session, "occlusion", None, OPTIONS)
    session.budget = MemoryBudget(1, "cpu", "test")
    h, w = session.image.shape
    facts = ImageFacts(h, w, 0, 1, memory=session.memory.memory_facts())
    line = method_cost("occlusion", facts, OPTIONS).describe_memory()
    assert "one image needs more than the" in line and "one at a time" in line


def test_integrated_gradients_progress_moves_within_a_chunk(tiny, prepared):
    class Recorder:
        def __init__(self) -> None:
            self.reports: list[tuple[int, int, str]] = []

        def set_progress(self, done: int, total: int, message: str = "") -> None:
            self.reports.append((done, total, message))

        def is_cancelled(self) -> bool:
            return False

    for budget in (one_call(), one_image()):
        session = session_with(tiny, prepared, budget)
        targets = session.predict().present_classes
        state = Recorder()
        compute(session, "ig", targets, OPTIONS, state=state)
        steps = [(d, t) for d, t, m in state.reports if m.startswith("Integrated gradients")]
        total = OPTIONS.n_steps * (1 + len(targets))
        assert all(t == total for _d, t in steps)
        done = [d for d, _t in steps]
        assert done == sorted(done) and done[-1] == total
        # after each chunk's forward pass and each class's gradient, not only between chunks
        chunks = 1 if budget.limit == HUGE else OPTIONS.n_steps
        assert len(set(done)) >= chunks * (1 + len(targets))


# ----------------------------------------------------------------------------- quick preset
def test_the_quick_evaluation_says_what_it_skips_and_costs_less(tiny, prepared):
    text = QUICK.differences()
    assert "10 pixel steps (not 20)" in text and "3 chance runs (not 10)" in text
    assert "no randomisation check" in text and QUICK_DESCRIPTION.startswith("Quick preview")
    assert EvaluationSettings().differences() == ""
    h, w = prepared.shape
    facts = ImageFacts(h, w, 3, 3)
    methods = ("gradcam", "activation", "ablation")
    full = evaluation_cost(facts, methods, MethodOptions(), EvaluationSettings())
    quick = evaluation_cost(facts, methods, MethodOptions(), QUICK)
    assert quick.forward * 3 < full.forward and quick.mprt == 0
    session = session_with(tiny, prepared, one_call())
    result = evaluate(session, methods[:1], None, MethodOptions(), QUICK)
    assert all(not r.mprt for r in result.results.values())
    assert sum(result.images.values()) <= quick.forward


# ----------------------------------------------------------------------------- the CLI
def test_explain_shows_and_records_the_budget_and_its_maps_do_not_depend_on_it(
        tmp_path, blocks_image, capsys):
    args = ["explain", str(blocks_image), "--model", "colour", "--weights", "untrained",
            "--device", "cpu", "--size", "40", "--methods", "occlusion,ig", "--n-steps", "3",
            "--window", "10", "--stride", "5"]
    # 105 KiB: less than one image's input and logits, so one image per call
    assert main([*args, "--out", str(tmp_path / "a"), "--gpu-memory", "0.0001"]) == 0
    out = capsys.readouterr().out
    assert "on cpu" in out and "memory budget 105 KiB (--gpu-memory)" in out
    assert main([*args, "--out", str(tmp_path / "b"), "-q"]) == 0
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    assert a["memory_budget"]["source"] == "--gpu-memory"
    assert a["memory_budget"]["bytes"] == int(0.0001 * GIB)
    assert b["memory_budget"]["device"] == "cpu" and b["memory_budget"]["bytes"] > 0
    for method in ("occlusion", "ig"):
        # images, whatever the chunks: the one-byte run took one image per call
        assert a["method_costs"][method]["forward_passes"] == \
            b["method_costs"][method]["forward_passes"]
        assert a["method_costs"][method]["forward_calls"] == \
            a["method_costs"][method]["forward_passes"]
    with np.load(tmp_path / "a" / "attributions.npz") as na, \
            np.load(tmp_path / "b" / "attributions.npz") as nb:
        for key in nb.files:
            np.testing.assert_array_equal(na[key], nb[key], err_msg=key)


@pytest.mark.parametrize("command", ["explain", "evaluate", "ablate", "batch"])
def test_every_model_command_refuses_a_bad_budget_in_one_line(tmp_path, blocks_image,
                                                              capsys, command):
    extra = ["--at", "3,3"] if command == "ablate" else []
    code = main([command, str(blocks_image), "--model", "tiny", "--weights", "untrained",
                 "--device", "cpu", "--out", str(tmp_path / "o"), "--gpu-memory", "0",
                 *extra])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.splitlines() == [err]
    assert "--gpu-memory 0" in err and not (tmp_path / "o").exists()


def test_batch_takes_the_budget_to_every_image(tmp_path, blocks_image, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(blocks_image.read_bytes())
    code = main(["batch", str(folder), "--model", "tiny", "--weights", "untrained",
                 "--device", "cpu", "--size", "24", "--gpu-memory", "1.5", "--out",
                 str(tmp_path / "out"), "-q"])
    assert code == 0 and ENV_VAR not in os.environ  # restored
    reports = list((tmp_path / "out").rglob("report.json"))
    assert reports
    budget = json.loads(reports[0].read_text())["memory_budget"]
    assert budget["bytes"] == int(1.5 * GIB) and budget["device"] == "cpu"


def test_a_bad_environment_budget_is_one_line(tmp_path, blocks_image, capsys, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "lots")
    code = main(["explain", str(blocks_image), "--model", "tiny", "--weights", "untrained",
                 "--device", "cpu", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and f"{ENV_VAR} 'lots' is not a number of GiB" in err


def test_evaluate_quick_runs_the_preset_and_explicit_options_still_apply(
        tmp_path, blocks_image, capsys):
    args = ["evaluate", str(blocks_image), "--model", "tiny", "--weights", "untrained",
            "--device", "cpu", "--size", "32", "--methods", "gradcam", "--quick"]
    assert main([*args, "--out", str(tmp_path / "q")]) == 0
    captured = capsys.readouterr()
    assert QUICK_DESCRIPTION in captured.err and "memory budget" in captured.out
    report = json.loads((tmp_path / "q" / "evaluation.json").read_text())
    settings = report["settings"]
    assert (settings["pixel_steps"], settings["chance_runs"], settings["mprt"]) == (10, 3, False)
    assert report["memory_budget"]["device"] == "cpu" and report["device"].startswith("cpu")
    assert main([*args, "--pixel-steps", "4", "--out", str(tmp_path / "p"), "-q"]) == 0
    report = json.loads((tmp_path / "p" / "evaluation.json").read_text())
    assert report["settings"]["pixel_steps"] == 4 and report["settings"]["mprt"] is False
