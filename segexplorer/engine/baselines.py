"""What an ablated segment is replaced with.

``zero``: 0 in normalised space, Captum's default (the ImageNet mean colour);
``black``: pixel value 0; ``blur``: a Gaussian-blurred copy of the image;
a colour: ``#RRGGBB`` or ``R,G,B`` (0-255).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .catalog import IMAGENET_MEAN, IMAGENET_STD
from .errors import UserError

if TYPE_CHECKING:  # torch is imported where tensors are made: parsing stays torch-free
    import torch


ZERO, BLACK, BLUR = "zero", "black", "blur"
BASELINE_CHOICES = (ZERO, BLACK, BLUR)

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
_TRIPLE = re.compile(r"^\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*$")


@dataclass(frozen=True)
class Baseline:
    kind: str  # zero, black, blur or colour
    rgb: tuple[int, int, int] | None = None  # for colour

    @property
    def label(self) -> str:
        if self.kind == "colour" and self.rgb is not None:
            return "#{:02x}{:02x}{:02x}".format(*self.rgb)
        return self.kind

    def describe(self) -> str:
        return {
            ZERO: "0 in normalised space (Captum's default: the mean colour of the model's "
                  "normalisation, ImageNet's unless its card says otherwise)",
            BLACK: "black (pixel value 0)",
            BLUR: "a Gaussian-blurred copy of the image",
        }.get(self.kind, f"the colour {self.label}")


def parse_baseline(text: str | Baseline) -> Baseline:
    if isinstance(text, Baseline):
        return text
    value = text.strip().lower()
    if value in BASELINE_CHOICES:
        return Baseline(value)
    match = _HEX.match(value)
    if match:
        h = match.group(1)
        return Baseline("colour", (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)))
    match = _TRIPLE.match(value)
    if match and all(int(v) <= 255 for v in match.groups()):
        return Baseline("colour", tuple(int(v) for v in match.groups()))  # type: ignore[arg-type]
    raise UserError(f"Unknown baseline '{text}': use zero, black, blur, #RRGGBB or R,G,B.")


def _normalised_colour(rgb01: tuple[float, float, float], mean: tuple[float, float, float],
                       std: tuple[float, float, float]) -> torch.Tensor:
    import torch

    values = [(c - m) / s for c, m, s in zip(rgb01, mean, std)]
    return torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1)


def baseline_tensor(baseline: Baseline, inp: torch.Tensor,
                    mean: tuple[float, float, float] = IMAGENET_MEAN,
                    std: tuple[float, float, float] = IMAGENET_STD) -> float | torch.Tensor:
    """The value Captum's ``baselines=`` takes: a scalar or a tensor broadcastable to ``inp``.

    ``mean`` and ``std`` are the normalisation of ``inp`` (ImageNet's unless a model card
    says otherwise): colours and the blur are made in pixel space and normalised with them.
    """
    import torch
    from torchvision.transforms import functional as TF

    if baseline.kind == ZERO:
        return 0.0
    if baseline.kind == BLACK:
        return _normalised_colour((0.0, 0.0, 0.0), mean, std).to(inp.device, inp.dtype)
    if baseline.kind == "colour" and baseline.rgb is not None:
        r, g, b = (c / 255.0 for c in baseline.rgb)
        return _normalised_colour((r, g, b), mean, std).to(inp.device, inp.dtype)
    # blur: in pixel space, then normalised again, so it stays a plausible image
    mean_t = torch.tensor(mean, device=inp.device, dtype=inp.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=inp.device, dtype=inp.dtype).view(1, 3, 1, 1)
    pixels = inp * std_t + mean_t
    sigma = max(2.0, min(inp.shape[2:]) / 40.0)
    kernel = int(2 * round(3 * sigma) + 1)
    blurred = TF.gaussian_blur(pixels, [kernel, kernel], [sigma, sigma])
    result: torch.Tensor = ((blurred - mean_t) / std_t).contiguous()
    return result
