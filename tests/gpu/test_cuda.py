"""The CUDA path on a real GPU: chunked sweeps, real out-of-memory errors, strict fp32.

Collected only with ``pytest --device cuda`` (tests/conftest.py); the CPU suite covers
the same code with simulated errors. ``benchmarks/gpu_session.sh`` runs these with the
parity tests when a session has a GPU.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segexplorer.cli import main
from segexplorer.engine.chunking import MAX_CUDA_CHUNK
from segexplorer.engine.errors import UserError
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.models import load_model
from segexplorer.engine.segments import make_segments
from segexplorer.engine.session import Session


def close(a: np.ndarray, b: np.ndarray, rtol: float) -> None:
    scale = max(float(np.abs(b).max()), 1e-12)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


def agree(a: np.ndarray, b: np.ndarray) -> float:
    """Share of equal entries of two class maps (an argmax may flip where two classes'
    logits tie to within rounding, so maps are compared by share, scores by value)."""
    return float((a == b).mean())


@pytest.fixture(scope="module")
def fcn50(device):
    return load_model("fcn_resnet50", "untrained", device)


@pytest.fixture(scope="module")
def coffee_prepared(coffee_path):
    return preprocess(load_image(coffee_path), 160)


@pytest.fixture()
def memory_fraction(device):
    """Cap this process's GPU memory at what it holds now plus ``extra`` bytes, for one
    test; the cap is always lifted after it."""
    def cap(extra: int) -> None:
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        limit = torch.cuda.memory_reserved(device) + extra
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), device)

    yield cap
    torch.cuda.set_per_process_memory_fraction(1.0, device)
    torch.cuda.empty_cache()


def one_image_peak(session: Session) -> int:
    """Bytes one ablated image needs beyond what is already allocated."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    with torch.inference_mode():
        session.model.logits(session.input)
    return torch.cuda.max_memory_allocated() - before


def test_sweep_is_chunked_by_the_budget_and_equals_cpu(fcn50, coffee_prepared, device):
    session = Session(fcn50, coffee_prepared)
    segments = make_segments(session.predict().class_map, "component")
    assert segments.count >= 4, "need several segments to see chunking"
    sweep = session.sweep(segments)
    # chunks sized from the budget and the memory the prediction's pass took: no probe
    assert session.memory.image_bytes > 0
    expected = min(MAX_CUDA_CHUNK, segments.count,
                   session.budget.limit // session.memory.image_bytes)
    assert sweep.chunk_size == expected > 1
    assert sweep.forward_passes == segments.count  # images, however many calls
    assert len(sweep.batches) == -(-segments.count // sweep.chunk_size)
    # without that measurement, the first segment runs alone to measure it (the probe)
    probed = Session(fcn50, coffee_prepared)
    probed.predict()
    probed.memory.forget_image_bytes()
    probe_sweep = probed.sweep(segments)
    assert probe_sweep.batches[0] == 1 and probed.memory.image_bytes > 0
    assert probe_sweep.forward_passes == segments.count
    close(probe_sweep.ablated_scores, sweep.ablated_scores, 1e-5)
    one_by_one = Session(fcn50, coffee_prepared).sweep(segments, chunk_size=1)
    close(sweep.ablated_scores, one_by_one.ablated_scores, 1e-5)
    assert agree(sweep.after_maps, one_by_one.after_maps) > 0.999
    # the same image on the CPU: the same logits to float rounding
    cpu = Session(load_model("fcn_resnet50", "untrained", "cpu"), coffee_prepared)
    close(session.predict().logits, cpu.predict().logits, 1e-5)
    assert agree(session.predict().class_map, cpu.predict().class_map) > 0.999


def test_a_real_out_of_memory_error_halves_the_chunk(fcn50, coffee_prepared, memory_fraction):
    session = Session(fcn50, coffee_prepared)
    segments = make_segments(session.predict().class_map, "component")
    reference = session.sweep(segments, chunk_size=1)
    per_image = one_image_peak(session)
    # room for about three images: a chunk of 16 must run out, and the sweep still ends
    memory_fraction(3 * per_image)
    sweep = session.sweep(segments, chunk_size=16)
    assert 1 <= sweep.chunk_size < 16
    assert sum(sweep.batches) == segments.count
    close(sweep.ablated_scores, reference.ablated_scores, 1e-5)
    assert agree(sweep.after_maps, reference.after_maps) > 0.999


def test_no_memory_even_for_one_segment_is_a_clear_message(fcn50, coffee_prepared,
                                                           memory_fraction):
    session = Session(fcn50, coffee_prepared)
    segments = make_segments(session.predict().class_map, "class")
    per_image = one_image_peak(session)
    memory_fraction(per_image // 10)
    with pytest.raises(UserError, match="Out of memory on cuda"):
        session.sweep(segments, chunk_size=4)


def test_fp32_runs_the_model_without_tf32_and_restores_the_flag(fcn50, coffee_prepared):
    seen = []
    handle = fcn50.module.backbone.conv1.register_forward_hook(
        lambda *_: seen.append(torch.backends.cudnn.allow_tf32))
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        session = Session(fcn50, coffee_prepared)
        session.predict()
        session.gradcam(None)
        session.sweep(make_segments(session.predict().class_map, "class"))
        assert seen and not any(seen)
        assert torch.backends.cudnn.allow_tf32  # the user's setting is back
        seen.clear()
        fast = Session(fcn50, coffee_prepared, precision="bf16")
        fast.predict()
        assert seen == [True]  # fast mode leaves the process's setting alone
    finally:
        handle.remove()
        torch.backends.cudnn.allow_tf32 = saved


def test_loading_a_model_leaves_cudnn_autotuning_off(device):
    """Autotuning's search offers cuDNN all free GPU memory (docs/performance.md)."""
    before = torch.backends.cudnn.benchmark
    load_model("tiny", "untrained", device)
    assert torch.backends.cudnn.benchmark == before is False


def test_fast_mode_on_cuda_is_close_to_fp32(fcn50, coffee_prepared):
    exact = Session(fcn50, coffee_prepared)
    fast = Session(fcn50, coffee_prepared, precision="bf16")
    a, b = exact.predict(), fast.predict()
    assert np.isfinite(b.logits).all()
    agree = float((a.class_map == b.class_map).mean())
    cam_a, cam_b = exact.gradcam(a.present_classes[:2]), fast.gradcam(a.present_classes[:2])
    for c in cam_a.raw:
        assert cam_b.raw[c].dtype == np.float32 and np.isfinite(cam_b.raw[c]).all()
    rel = float(np.abs(a.logits - b.logits).max() / np.abs(a.logits).max())
    print(f"bf16 vs fp32 on cuda: {agree:.2%} pixels agree, largest relative logit error "
          f"{rel:.2e}")
    assert agree > 0.9 and rel < 0.1  # bf16 keeps 8 bits of mantissa: close, not equal


def test_cli_explain_on_cuda_equals_cpu(coffee_path, tmp_path, capsys):
    outs = {}
    for dev in ("cuda", "cpu"):
        out = tmp_path / dev
        code = main(["explain", str(coffee_path), "--model", "fcn_resnet50", "--size", "96",
                     "--weights", "untrained", "--device", dev, "--out", str(out), "--quiet"])
        assert code == 0, capsys.readouterr().err
        outs[dev] = out
    gpu, cpu = (np.load(outs[d] / "attributions.npz") for d in ("cuda", "cpu"))
    assert agree(gpu["segmentation"], cpu["segmentation"]) > 0.999
    grad_cams = [k for k in cpu.files if k.startswith("gradcam")]
    assert grad_cams
    for key in grad_cams:
        close(gpu[key], cpu[key], 1e-4)
    if np.array_equal(gpu["segmentation"], cpu["segmentation"]):  # the same segments
        assert set(gpu.files) == set(cpu.files)
        # ablation values are differences of two nearly equal sums: cancellation
        # multiplies the logits' relative rounding error
        close(gpu["ablation_table"], cpu["ablation_table"], 1e-3)
    report = json.loads((outs["cuda"] / "report.json").read_text())
    assert "cuda" in json.dumps(report["device"])
