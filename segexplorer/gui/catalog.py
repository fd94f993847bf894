"""What the window needs to know about the engine before torch has been imported.

Importing torch and torchvision takes seconds; the window must be painted long before
that. So the window is built from the torch-free facts below, and the engine is loaded
by :func:`load_engine` in a worker thread (the ``startup`` job). Once it is loaded,
:func:`architectures` answers from the engine's own registry (which tests extend), and
the device list is the engine's. ``tests/gui/test_startup.py`` checks that these facts
equal the engine's.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass

DEFAULT_SIZE = 640  # engine.image.DEFAULT_SIZE
DEFAULT_ARCHITECTURE = "fcn_resnet101"  # engine.models.DEFAULT_ARCHITECTURE
METHODS = ("gradcam", "activation", "ablation")  # engine.analysis.METHODS
AUTO_DEVICE = "auto"  # what the device list shows until torch can say what exists

# The engine modules the window uses; importing them imports torch and torchvision.
ENGINE_MODULES = (
    "segexplorer.engine.devices",
    "segexplorer.engine.models",
    "segexplorer.engine.weights",
    "segexplorer.engine.image",
    "segexplorer.engine.baselines",
    "segexplorer.engine.aggregation",
    "segexplorer.engine.session",
    "segexplorer.engine.ablation",
    "segexplorer.engine.analysis",
)


@dataclass(frozen=True)
class ArchInfo:
    name: str
    description: str
    default_layer: str


_RESNET_LAYER = "backbone.layer4.2.conv3"
_MOBILENET_LAYER = "backbone.16.0"
BUILTIN_ARCHITECTURES: dict[str, ArchInfo] = {
    a.name: a for a in (
        ArchInfo("fcn_resnet50", "FCN, ResNet-50 backbone", _RESNET_LAYER),
        ArchInfo("fcn_resnet101", "FCN, ResNet-101 backbone (the seed's model)", _RESNET_LAYER),
        ArchInfo("deeplabv3_resnet50", "DeepLabV3, ResNet-50 backbone", _RESNET_LAYER),
        ArchInfo("deeplabv3_resnet101", "DeepLabV3, ResNet-101 backbone", _RESNET_LAYER),
        ArchInfo("deeplabv3_mobilenet_v3_large", "DeepLabV3, MobileNetV3-Large backbone",
                 _MOBILENET_LAYER),
        ArchInfo("lraspp_mobilenet_v3_large", "LR-ASPP, MobileNetV3-Large backbone (fastest)",
                 _MOBILENET_LAYER),
    )
}


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


def load_engine(_state=None, count_threads: bool = True) -> EngineInfo:
    """Import torch and the engine (a worker job: never call it on the main thread
    unless torch is already imported). ``count_threads=False`` leaves torch's thread
    pool untouched (asking for its size starts it) and reports 0 threads."""
    global _engine
    started = time.perf_counter()
    import importlib

    for name in ENGINE_MODULES:
        importlib.import_module(name)
    import torch

    from ..engine.devices import available_devices

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
    from ..engine.models import ARCHITECTURES

    return {name: ArchInfo(name, arch.description or "", arch.default_layer)
            for name, arch in ARCHITECTURES.items()}


def devices() -> list[str]:
    """The device list: the engine's once it is loaded, else just 'auto'."""
    return list(_engine.devices) if _engine is not None else [AUTO_DEVICE]


# Baselines as users type them (engine.baselines.parse_baseline, which imports torch).
_BASELINE_KINDS = ("zero", "black", "blur")
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
_TRIPLE = re.compile(r"^\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*$")


def baseline_label(text: str) -> str | None:
    """The label engine.baselines gives ``text`` ('zero', '#rrggbb'), or None if invalid."""
    value = text.strip().lower()
    if value in _BASELINE_KINDS:
        return value
    match = _HEX.match(value)
    if match:
        return "#" + match.group(1)
    match = _TRIPLE.match(value)
    if match and all(int(v) <= 255 for v in match.groups()):
        return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in match.groups()))
    return None
