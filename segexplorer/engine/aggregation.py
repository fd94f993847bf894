"""Turning a segmentation output into one score per class (the seed's wrappers).

Captum attributes a scalar, so the per-pixel output is aggregated into a score per
class. Every aggregation returns N x C, so one forward pass yields the score of every
class at once: that is what lets one ablation sweep and one Grad-CAM pass serve all
targets.

The default score of class c is the sum of z_c over c's own mask in the original
prediction (the *selection*, 1 x C x H x W): for softmax and binary models the seed's
argmax mask (one class per pixel), for multi-label models z_c > logit(threshold) (masks
may overlap, a pixel may be in none). The mask is fixed when the input is perturbed, as
the seed's wrapper keeps ``out_max``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError

ARGMAX_MASKED = "argmax"  # the seed's agg_segmentation_wrapper (default)
PLAIN_SUM = "sum"  # the seed's commented-out alternative
PIXEL = "pixel"  # one pixel's score for each class
REGION = "region"  # the sum over a user-chosen region

AGGREGATIONS = (ARGMAX_MASKED, PLAIN_SUM, PIXEL, REGION)


@dataclass(frozen=True)
class Aggregation:
    """How per-pixel scores become one score per class."""

    kind: str = ARGMAX_MASKED
    pixel: tuple[int, int] | None = None  # (x, y) at working resolution, for PIXEL
    region: np.ndarray | None = None  # H x W bool, for REGION

    def __post_init__(self) -> None:
        if self.kind not in AGGREGATIONS:
            raise UserError(f"Unknown aggregation '{self.kind}': use one of "
                            f"{', '.join(AGGREGATIONS)}.")
        if self.kind == PIXEL and self.pixel is None:
            raise UserError("The pixel aggregation needs a pixel (x, y).")
        if self.kind == REGION and (self.region is None or not np.any(self.region)):
            raise UserError("The region aggregation needs a non-empty region.")

    def describe(self) -> str:
        if self.kind == ARGMAX_MASKED:
            return "sum of each class's scores over the pixels originally predicted as it"
        if self.kind == PLAIN_SUM:
            return "sum of each class's scores over all pixels"
        if self.kind == PIXEL and self.pixel is not None:
            return f"scores at pixel (x={self.pixel[0]}, y={self.pixel[1]})"
        region = self.region if self.region is not None else np.zeros(0, bool)
        return f"sum of scores over a region of {int(np.count_nonzero(region))} pixels"


def argmax_selection(logits: torch.Tensor, class_map: torch.Tensor) -> torch.Tensor:
    """The seed's one-hot mask of the original prediction (1 x C x H x W)."""
    return torch.zeros_like(logits[0:1]).scatter_(1, class_map, 1)


def multilabel_selection(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """Each class's own mask, z_c > threshold (a logit), as 1 x C x H x W of 0 and 1 in the
    logits' dtype: the multi-label analogue of :func:`argmax_selection`."""
    return (logits[0:1] > threshold).to(logits.dtype)


def multilabel_display(logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """N x 1 x H x W int64: the class a single colour map draws at each pixel: of the
    classes present there (``present``, N x C x H x W, nonzero where present) the one with
    the largest logit (the first on ties); C, "no class", where none is present. For
    display only: a pixel may be in several classes."""
    masked = logits.masked_fill(present == 0, float("-inf"))
    indices = masked.max(dim=1, keepdim=True).indices
    none = torch.full_like(indices, logits.shape[1])
    return torch.where((present != 0).any(dim=1, keepdim=True), indices, none)


def pack_label_sets(present: torch.Tensor) -> torch.Tensor:
    """N x C x H x W (nonzero where present) to N x B x H x W uint8, B = ceil(C / 8): bit
    c % 8 of byte c // 8 is set where class c is present (numpy's
    ``unpackbits(axis=1, bitorder="little")`` undoes it). 8 classes in a byte: what a
    sweep keeps per segment for a multi-label model."""
    n, c, h, w = present.shape
    b = (c + 7) // 8
    bits = F.pad((present != 0).to(torch.uint8), (0, 0, 0, 0, 0, 8 * b - c))
    weights = (2 ** torch.arange(8, device=present.device)).to(torch.uint8).view(1, 1, 8, 1, 1)
    return (bits.view(n, b, 8, h, w) * weights).sum(dim=2).to(torch.uint8)


def aggregate(logits: torch.Tensor, agg: Aggregation, class_map: torch.Tensor,
              selected: torch.Tensor | None = None) -> torch.Tensor:
    """N x C x H x W scores to N x C.

    ``class_map`` is the original prediction (1 x 1 x H x W, int64): the argmax-masked
    sum keeps using it when the input is perturbed, as the seed's wrapper does.
    ``selected`` may pass that mask's one-hot form, built once (``argmax_selection``);
    for a multi-label model it must be given (``multilabel_selection``): each class's own
    mask, which may overlap the others'.
    """
    if agg.kind == ARGMAX_MASKED:
        # The seed's exact operations, so our numbers equal Captum's to the last bit.
        if selected is None:
            selected = argmax_selection(logits, class_map)
        return (logits * selected).sum(dim=(2, 3))
    if agg.kind == PLAIN_SUM:
        return logits.sum(dim=(2, 3))
    if agg.kind == PIXEL and agg.pixel is not None:
        x, y = agg.pixel
        h, w = logits.shape[2:]
        if not (0 <= x < w and 0 <= y < h):
            raise UserError(f"Pixel ({x}, {y}) is outside the {w} x {h} working image.")
        return logits[:, :, y, x]
    region = torch.as_tensor(agg.region, device=logits.device)
    if tuple(region.shape) != tuple(logits.shape[2:]):
        raise UserError(f"The region is {tuple(region.shape)} but the working image is "
                        f"{tuple(logits.shape[2:])}.")
    return (logits * region.to(logits.dtype)).sum(dim=(2, 3))


def make_wrapper(
    forward: Callable[[torch.Tensor], torch.Tensor], agg: Aggregation, class_map: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A Captum-ready forward function: input batch -> N x C class scores.

    ``class_map``: the original prediction (1 x 1 x H x W, int64), or a selection of each
    class's pixels (1 x C x H x W floats, ``Session.selection_tensor``; a multi-label
    model's)."""
    selected = None if class_map.dtype == torch.int64 else class_map

    def wrapper(inp: torch.Tensor) -> torch.Tensor:
        return aggregate(forward(inp), agg, class_map, selected)

    return wrapper
