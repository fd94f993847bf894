"""The memory budget on a real GPU: every method's peak allocated memory stays within it,
and its counts are the CPU's (images, not calls).

Collected only with ``pytest --device cuda`` (tests/conftest.py); tests/test_budget.py
runs the same chunking on the CPU. The peak is ``torch.cuda.max_memory_allocated`` above
what was allocated before the method, kept across the engine's own resets of that
counter (it resets it when it measures one image).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
import torch

from segexplorer.engine.attribution import compute
from segexplorer.engine.budget import GIB, MemoryBudget
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.methods import METHODS, MethodOptions
from segexplorer.engine.models import load_model
from segexplorer.engine.session import Session

OPTIONS = MethodOptions(n_steps=16, window=40, stride=20, n_samples=4)
#: what a method holds outside its chunks (its scores and sums, the graph of a one-pass
#: method's layer): a bound above the budget for the peak, not a licence to exceed it
SLACK = 1.05


@contextmanager
def peak_allocated(device: torch.device) -> Iterator[Callable[[], int]]:
    """The peak allocated bytes above the start of the block, engine resets included."""
    original = torch.cuda.reset_peak_memory_stats
    kept = [0]

    def reset(dev: torch.device | str | int | None = None) -> None:
        kept[0] = max(kept[0], torch.cuda.max_memory_allocated(device))
        original(dev)

    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    original(device)
    base = torch.cuda.memory_allocated(device)
    with mock.patch.object(torch.cuda, "reset_peak_memory_stats", reset):
        yield lambda: max(kept[0], torch.cuda.max_memory_allocated(device)) - base


@pytest.fixture(scope="module")
def fcn50(device):
    return load_model("fcn_resnet50", "untrained", device)


@pytest.fixture(scope="module")
def prepared(motorcycle_path):
    return preprocess(load_image(motorcycle_path), 320)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_stays_within_a_one_gib_budget(fcn50, prepared, device, method):
    budget = MemoryBudget(1 * GIB, str(device), "test")
    session = Session(fcn50, prepared, budget=budget)
    targets = session.predict().present_classes[:3]
    with peak_allocated(device) as peak:
        maps = compute(session, method, targets, OPTIONS)
        torch.cuda.synchronize(device)
        used = peak()
    print(f"{method}: peak {used / 2**20:.0f} MiB in {maps.calls} calls of "
          f"{maps.forward} images (budget 1 GiB)")
    assert used <= SLACK * budget.limit, f"{method}: {used / 2**20:.0f} MiB"
    cpu = Session(load_model("fcn_resnet50", "untrained", "cpu"), prepared)
    on_cpu = compute(cpu, method, targets, OPTIONS)
    # the same images through the model and back on both devices, whatever the chunks
    assert (maps.forward, maps.backward) == (on_cpu.forward, on_cpu.backward)
    for c in targets:
        scale = max(float(np.abs(on_cpu.maps[c]).max()), 1e-12)
        np.testing.assert_allclose(maps.maps[c], on_cpu.maps[c], rtol=1e-3,
                                   atol=1e-3 * scale)


@pytest.mark.parametrize("method", ["ablation", "occlusion", "ig", "layer_ig"])
def test_a_smaller_budget_takes_more_calls_and_less_memory(fcn50, prepared, device, method):
    peaks, calls, results = {}, {}, {}
    for gib in (2.0, 0.5):
        session = Session(fcn50, prepared, budget=MemoryBudget(int(gib * GIB), str(device),
                                                               "test"))
        targets = session.predict().present_classes[:2]
        with peak_allocated(device) as peak:
            results[gib] = compute(session, method, targets, OPTIONS)
            torch.cuda.synchronize(device)
            peaks[gib] = peak()
        calls[gib] = results[gib].calls
    assert calls[0.5] >= calls[2.0] and peaks[0.5] <= SLACK * 0.5 * GIB
    assert results[0.5].forward == results[2.0].forward
    for c in results[2.0].maps:
        scale = max(float(np.abs(results[2.0].maps[c]).max()), 1e-12)
        np.testing.assert_allclose(results[0.5].maps[c], results[2.0].maps[c], rtol=1e-4,
                                   atol=1e-4 * scale)


def test_integrated_gradients_at_640_px_on_fcn_resnet101_fit_a_16_gib_card(
        motorcycle_path, device):
    """The issue's failure: all 50 steps in one pass ran out of memory on a whole H200.
    Under the default budget (at most 8 GiB) it completes within it."""
    model = load_model("fcn_resnet101", "untrained", device)
    session = Session(model, preprocess(load_image(motorcycle_path), 640))
    assert session.budget.limit <= 8 * GIB
    targets = session.predict().present_classes[:2]
    with peak_allocated(device) as peak:
        maps = compute(session, "ig", targets, MethodOptions(n_steps=50))
        torch.cuda.synchronize(device)
        used = peak()
    print(f"ig fcn_resnet101 640 px: peak {used / 2**30:.2f} GiB, {maps.calls} calls")
    assert used <= SLACK * session.budget.limit and maps.forward == 50
