"""What the window needs to know about the engine before torch has been imported.

Importing torch and torchvision takes seconds; the window must be painted long before
that. So the window is built from the engine's torch-free facts (``engine.catalog``,
``engine.baselines.parse_baseline``), and the rest of the engine is loaded
by :func:`load_engine` in a worker thread (the ``startup`` job). Once it is loaded,
:func:`architectures` answers from the engine's own registry (which tests extend), and
the device list is the engine's. ``tests/gui/test_startup.py`` checks that importing
the window imports no torch.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from ...engine.baselines import parse_baseline
from ...engine.catalog import (
    ALL_METHODS,
    BUILTIN_ARCHITECTURES,
    DEFAULT_ARCHITECTURE,
    DEFAULT_SIZE,
    METHODS,
)
from ...engine.catalog import ArchInfo as ArchInfo
from ...engine.errors import UserError

__all__ = ["ALL_METHODS", "BUILTIN_ARCHITECTURES", "DEFAULT_ARCHITECTURE", "DEFAULT_SIZE",
           "METHODS",
           "ArchInfo", "architectures", "baseline_label", "devices", "load_engine"]

AUTO_DEVICE = "auto"  # what the device list shows until torch can say what exists

# The engine modules the window uses; importing them imports torch and torchvision.
ENGINE_MODULES = (
    "segexplorer.engine.devices",
    "segexplorer.engine.models",
    "segexplorer.engine.weights",
    "segexplorer.engine.cards",
    "segexplorer.engine.layers",
    "segexplorer.engine.outputs",
    "segexplorer.engine.sources",
    "segexplorer.engine.image",
    "segexplorer.engine.baselines",
    "segexplorer.engine.aggregation",
    "segexplorer.engine.session",
    "segexplorer.engine.ablation",
    "segexplorer.engine.analysis",
)


@dataclass(frozen=True)
class EngineInfo:
    """What the startup job found: the devices and how long the import took."""

    devices: tuple[str, ...]
    num_threads: int
    import_seconds: float


_engine: EngineInfo | None = None


def engine_ready() -> bool:
    """Whether the engine (and so torch) has been imported completely."""
    return _engine is not None


def engine_info() -> EngineInfo | None:
    return _engine


def load_engine(_state: object = None, count_threads: bool = True) -> EngineInfo:
    """Import torch and the engine (a worker job: never call it on the main thread
    unless torch is already imported). ``count_threads=False`` leaves torch's thread
    pool untouched (asking for its size starts it) and reports 0 threads."""
    global _engine
    started = time.perf_counter()
    import importlib

    for name in ENGINE_MODULES:
        importlib.import_module(name)
    import torch

    from ...engine.devices import available_devices

    threads = int(torch.get_num_threads()) if count_threads else 0
    info = EngineInfo(tuple(available_devices()), threads,
                      time.perf_counter() - started)
    _engine = info
    return info


def engine_already_imported() -> bool:
    """True when torch and the engine's models are already fully imported (tests,
    scripts): then the window loads the rest of the engine at once, without a job."""
    for name in ("torch", "torchvision", "segexplorer.engine.models"):
        module = sys.modules.get(name)
        if module is None or getattr(module.__spec__, "_initializing", False):
            return False
    return True


def architectures() -> dict[str, ArchInfo]:
    """Every architecture the window offers (the engine's registry once it is loaded)."""
    if _engine is None:
        return dict(BUILTIN_ARCHITECTURES)
    from ...engine.models import ARCHITECTURES

    return {name: ArchInfo(name, arch.description or "", arch.default_layer)
            for name, arch in ARCHITECTURES.items()}


def devices() -> list[str]:
    """The device list: the engine's once it is loaded, else just 'auto'."""
    return list(_engine.devices) if _engine is not None else [AUTO_DEVICE]


def baseline_label(text: str) -> str | None:
    """The engine's label for a baseline the user typed ('zero', '#rrggbb'), None if invalid."""
    try:
        return parse_baseline(text).label
    except UserError:
        return None


def weights_at_hand(architecture: str, weights: str) -> bool:
    """Whether the model can load without a download: untrained, a file that exists, or
    torchvision's weights already in the cache (call once the engine has loaded)."""
    from pathlib import Path

    from ...engine.models import ARCHITECTURES
    from ...engine.weights import cached_weights_path

    if weights == "default":
        arch = ARCHITECTURES.get(architecture)
        path = cached_weights_path(arch) if arch is not None else None
        return path is not None and path.is_file()
    return weights == "untrained" or Path(weights).is_file()
