"""Class colours for segmentation maps (PASCAL VOC palette and its extension)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["VOC_PALETTE", "class_colors", "decode_segmap"]

# The seed tutorial's decode_segmap colours, index = VOC class id.
VOC_PALETTE: NDArray[np.uint8] = np.array(
    [
        (0, 0, 0),  # 0 background
        (128, 0, 0),  # 1 aeroplane
        (0, 128, 0),  # 2 bicycle
        (128, 128, 0),  # 3 bird
        (0, 0, 128),  # 4 boat
        (128, 0, 128),  # 5 bottle
        (0, 128, 128),  # 6 bus
        (128, 128, 128),  # 7 car
        (64, 0, 0),  # 8 cat
        (192, 0, 0),  # 9 chair
        (64, 128, 0),  # 10 cow
        (192, 128, 0),  # 11 dining table
        (64, 0, 128),  # 12 dog
        (192, 0, 128),  # 13 horse
        (64, 128, 128),  # 14 motorbike
        (192, 128, 128),  # 15 person
        (0, 64, 0),  # 16 potted plant
        (128, 64, 0),  # 17 sheep
        (0, 192, 0),  # 18 sofa
        (128, 192, 0),  # 19 train
        (0, 64, 128),  # 20 tv/monitor
    ],
    dtype=np.uint8,
)
VOC_PALETTE.flags.writeable = False


def _pascal_colormap(n: int) -> NDArray[np.uint8]:
    """The standard PASCAL bit-interleave colormap (distinct for n <= 2**24)."""
    ids = np.arange(n, dtype=np.int64)
    out = np.zeros((n, 3), dtype=np.int64)
    c = ids.copy()
    # Bits 0/1/2 of each 3-bit group of the id go to R/G/B, most significant first.
    for j in range(8):
        for ch in range(3):
            out[:, ch] |= ((c >> ch) & 1) << (7 - j)
        c >>= 3
    return out.astype(np.uint8)


def class_colors(n: int) -> NDArray[np.uint8]:
    """Return ``n x 3`` uint8 colours: VOC for ids 0..20, PASCAL's extension beyond.

    The PASCAL bit-interleave map coincides with ``VOC_PALETTE`` for ids 0..20
    (tested), so any number of classes gets stable, distinct colours.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"class_colors: n must be a non-negative integer, got {n!r}")
    if n > 2**24:
        raise ValueError(f"class_colors: at most 2**24 distinct colours, got n={n}")
    colors = _pascal_colormap(int(n))
    colors[: min(n, len(VOC_PALETTE))] = VOC_PALETTE[: min(n, len(VOC_PALETTE))]
    return colors


def _as_class_map(class_map: ArrayLike, name: str = "class_map") -> NDArray[np.int64]:
    arr = np.asarray(class_map)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (H, W), got shape {arr.shape}")
    if arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} has negative class ids (min {arr.min()})")
    return arr


def decode_segmap(class_map: ArrayLike, colors: ArrayLike | None = None) -> NDArray[np.uint8]:
    """Colour a ``HxW`` class-id map as ``HxWx3`` uint8 (the seed's decode_segmap, vectorised).

    ``colors`` (``n x 3`` uint8) overrides the palette; by default ids use
    :func:`class_colors`, so ids >= 21 get the PASCAL extension instead of the
    seed's black.
    """
    ids = _as_class_map(class_map)
    top = int(ids.max()) + 1 if ids.size else 1
    if colors is None:
        lut = class_colors(max(top, len(VOC_PALETTE)))
    else:
        lut = np.asarray(colors)
        if lut.ndim != 2 or lut.shape[1] != 3:
            raise ValueError(f"colors must be n x 3, got shape {lut.shape}")
        if top > len(lut):
            raise ValueError(f"class id {top - 1} has no colour (colors has {len(lut)} rows)")
        lut = np.clip(lut, 0, 255).astype(np.uint8)
    return np.take(lut, ids, axis=0)  # lut[ids], 4x faster (a click redraws it)
