"""Tiny registered models and wait helpers shared by the GUI tests.

Models are a few convolutions with seeded weights (21 VOC classes, output at input
resolution), so every test runs in seconds on two CPU cores. ``tiny_slow`` sleeps in
each forward pass so that a sweep lasts long enough to be cancelled or timed.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from segexplorer.engine.models import Architecture, register_architecture

TINY, SLOW, BROKEN = "gui_tiny", "gui_tiny_slow", "gui_tiny_broken"
SIZE = 64


class SlowDown:
    """Seconds each forward pass of ``tiny_slow`` sleeps (tests change it)."""

    seconds = 0.0


class TinySegmenter(nn.Module):
    """conv-relu-conv-relu (half resolution) then a 1x1 classifier, upsampled back."""

    def __init__(self, num_classes: int, slow: bool = False, broken: bool = False) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        )
        self.classifier = nn.Conv2d(16, num_classes, 1)
        self.slow = slow
        self.broken = broken

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.broken:
            raise RuntimeError("gui_tiny_broken always fails")
        if self.slow and SlowDown.seconds:
            time.sleep(SlowDown.seconds)  # sleeping releases the GIL, like real kernels
        logits = self.classifier(self.backbone(x))
        return {"out": F.interpolate(logits, size=x.shape[-2:], mode="bilinear",
                                     align_corners=False)}


def _register() -> None:
    register_architecture(Architecture(TINY, lambda n: TinySegmenter(n), "backbone.2",
                                       description="tiny test model"))
    register_architecture(Architecture(SLOW, lambda n: TinySegmenter(n, slow=True), "backbone.2",
                                       description="tiny test model that sleeps"))
    register_architecture(Architecture(BROKEN, lambda n: TinySegmenter(n, broken=True),
                                       "backbone.2", description="always fails"))


_register()


def wait_for_prediction(qtbot, window, timeout=20000):
    qtbot.waitUntil(lambda: window.prediction is not None, timeout=timeout)


def wait_idle(qtbot, window, timeout=20000):
    qtbot.waitUntil(lambda: not window.runner.is_busy(), timeout=timeout)
