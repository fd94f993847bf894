"""Small segmentation models for fast tests (registered like torchvision's)."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from segexplorer.engine.image import IMAGENET_MEAN, IMAGENET_STD
from segexplorer.engine.models import VOC_CATEGORIES, Architecture, register_architecture


class TinySeg(nn.Module):
    """A few convolutions and a 1x1 head; output at the input's resolution."""

    def __init__(self, num_classes: int = 21, delay: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Conv2d(16, num_classes, 1)
        self.delay = delay  # seconds per image: a slow model for cancellation tests

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.delay:
            time.sleep(self.delay * x.shape[0])
        out = self.head(self.body(x))
        return {"out": F.interpolate(out, x.shape[2:], mode="bilinear", align_corners=False)}


class ColourSeg(nn.Module):
    """Red pixels are class 1 (aeroplane), green ones class 2, everything else background.

    Scores are computed per pixel from the de-normalised colour, so ablating a red
    square removes class 1 there and nowhere else.
    """

    def __init__(self, num_classes: int = 21) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 3, 1)  # identity: a layer for Grad-CAM
        with torch.no_grad():
            self.features.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.features.bias.zero_()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        rgb = self.features(x) * self.std + self.mean
        r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        out = torch.full((x.shape[0], self.num_classes, *x.shape[2:]), -5.0, device=x.device)
        out = out.clone()
        out[:, 0:1] = 0.5 + 0 * r
        out[:, 1:2] = 4.0 * (r - (g + b) / 2)
        out[:, 2:3] = 4.0 * (g - (r + b) / 2)
        return {"out": out}


def register_tiny_models() -> None:
    register_architecture(Architecture("tiny", build=lambda n: TinySeg(n), default_layer="body.2",
                                       categories=VOC_CATEGORIES, description="test model"))
    register_architecture(Architecture("tiny_slow", build=lambda n: TinySeg(n, delay=0.25),
                                       default_layer="body.2", categories=VOC_CATEGORIES,
                                       description="slow test model"))
    register_architecture(Architecture("colour", build=lambda n: ColourSeg(n),
                                       default_layer="features", categories=VOC_CATEGORIES,
                                       description="colour test model"))
