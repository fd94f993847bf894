"""The small segmentation models every test uses (registered like torchvision's).

Models are a few convolutions with seeded weights (21 VOC classes, output at input
resolution), so every test runs in seconds on two CPU cores:

* ``tiny``: conv-relu-conv-relu (half resolution), a 1x1 head, upsampled back;
* ``tiny_slow``: the same, sleeping :attr:`SlowDown.seconds` per forward pass (tests set
  it), so that a job lasts long enough to be cancelled or timed;
* ``tiny_pixel_slow``: the same, sleeping :attr:`SlowDown.seconds_per_mpx` per megapixel
  of input (a preview at a smaller size is faster, as on a real CPU);
* ``tiny_broken``: always raises (a bug in the model);
* ``colour`` and ``colour_slow``: red pixels are class 1 (aeroplane), green ones class 2,
  everything else background, computed per pixel from the de-normalised colour, so
  ablating a red square removes class 1 there and nowhere else.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from segexplorer.engine.image import IMAGENET_MEAN, IMAGENET_STD
from segexplorer.engine.models import VOC_CATEGORIES, Architecture, register_architecture

TINY, SLOW, PIXEL_SLOW, BROKEN = "tiny", "tiny_slow", "tiny_pixel_slow", "tiny_broken"
COLOUR, COLOUR_SLOW = "colour", "colour_slow"


class SlowDown:
    """How long the slow models sleep (tests change it; a fixture resets it)."""

    seconds = 0.0  # per forward pass of tiny_slow and colour_slow
    seconds_per_mpx = 0.0  # per megapixel of input, tiny_pixel_slow
    inside = 0  # slow passes sleeping right now

    @classmethod
    def reset(cls) -> None:
        cls.seconds = 0.0
        cls.seconds_per_mpx = 0.0

    @classmethod
    def sleep(cls, seconds: float) -> None:
        cls.inside += 1
        try:
            time.sleep(seconds)  # sleeping releases the GIL, like real kernels
        finally:
            cls.inside -= 1


class TinySeg(nn.Module):
    """A few convolutions and a 1x1 head; output at the input's resolution."""

    def __init__(self, num_classes: int = 21, *, slow: bool = False,
                 pixel_slow: bool = False, broken: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Conv2d(16, num_classes, 1)
        self.slow, self.pixel_slow, self.broken = slow, pixel_slow, broken

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.broken:
            raise RuntimeError("tiny_broken always fails")
        if self.slow and SlowDown.seconds:
            SlowDown.sleep(SlowDown.seconds)
        if self.pixel_slow and SlowDown.seconds_per_mpx:
            SlowDown.sleep(SlowDown.seconds_per_mpx * x.shape[-2] * x.shape[-1] / 1e6)
        out = self.head(self.body(x))
        return {"out": F.interpolate(out, x.shape[2:], mode="bilinear", align_corners=False)}


class ColourSeg(nn.Module):
    """Red pixels are class 1 (aeroplane), green ones class 2, everything else background."""

    def __init__(self, num_classes: int = 21, slow: bool = False) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 3, 1)  # identity: a layer for Grad-CAM
        with torch.no_grad():
            self.features.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.features.bias.zero_()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.num_classes = num_classes
        self.slow = slow

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.slow and SlowDown.seconds:
            SlowDown.sleep(SlowDown.seconds)
        rgb = self.features(x) * self.std + self.mean
        r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        out = torch.full((x.shape[0], self.num_classes, *x.shape[2:]), -5.0, device=x.device)
        out = out.clone()
        out[:, 0:1] = 0.5 + 0 * r
        out[:, 1:2] = 4.0 * (r - (g + b) / 2)
        out[:, 2:3] = 4.0 * (g - (r + b) / 2)
        return {"out": out}


def register_tiny_models() -> None:
    def tiny(name: str, description: str, **kwargs: bool) -> Architecture:
        return Architecture(name, build=lambda n: TinySeg(n, **kwargs), default_layer="body.2",
                            categories=VOC_CATEGORIES, description=description)

    for arch in (
        tiny(TINY, "test model"),
        tiny(SLOW, "test model that sleeps", slow=True),
        tiny(PIXEL_SLOW, "test model, slower for bigger inputs", pixel_slow=True),
        tiny(BROKEN, "test model that always fails", broken=True),
        Architecture(COLOUR, build=lambda n: ColourSeg(n), default_layer="features",
                     categories=VOC_CATEGORIES, description="colour test model"),
        Architecture(COLOUR_SLOW, build=lambda n: ColourSeg(n, slow=True),
                     default_layer="features", categories=VOC_CATEGORIES,
                     description="colour test model that sleeps"),
    ):
        register_architecture(arch)
