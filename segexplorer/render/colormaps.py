"""Captum's colour map and value range for each sign, applied without a figure."""

from __future__ import annotations

import copy
from functools import cache

import matplotlib
import numpy as np
from matplotlib.colors import Colormap, LinearSegmentedColormap, Normalize
from numpy.typing import ArrayLike, NDArray

from .normalize import NormalizedAttr, canonical_sign

__all__ = [
    "COLORMAP_CHOICES",
    "apply_colormap",
    "colorbar_rgba",
    "colorbar_ticks",
    "colormap_for",
    "value_range",
]

# As captum.attr._utils.visualization._initialize_cmap_and_vmin_vmax.
_RANGES: dict[str, tuple[float, float]] = {
    "all": (-1.0, 1.0),
    "positive": (0.0, 1.0),
    "negative": (0.0, 1.0),
    "absolute_value": (0.0, 1.0),
}
_NAMED = {"positive": "Greens", "negative": "Reds", "absolute_value": "Blues"}


@cache
def _shared_cmap(sign: str) -> Colormap:
    # Private, never handed out: callers get copies, so nobody can mutate the shared one.
    if sign == "all":
        return LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"])
    return matplotlib.colormaps[_NAMED[sign]]


#: colour maps a user may choose instead of Captum's (its ``cmap=`` argument): sequential
#: ones for one sign, diverging ones for both
COLORMAP_CHOICES: tuple[str, ...] = ("viridis", "magma", "inferno", "cividis", "coolwarm",
                                     "RdBu_r", "PiYG")


def _cmap(sign: str, cmap: str | None) -> Colormap:
    if cmap is None or cmap == "":
        return _shared_cmap(sign)
    if cmap not in matplotlib.colormaps:
        raise ValueError(f"unknown colour map {cmap!r}")
    return matplotlib.colormaps[cmap]


def colormap_for(sign: str, cmap: str | None = None) -> Colormap:
    """The matplotlib colour map Captum uses for ``sign`` (a fresh copy), or ``cmap``."""
    return copy.copy(_cmap(canonical_sign(sign), cmap))


def value_range(sign: str) -> tuple[float, float]:
    """Captum's ``(vmin, vmax)`` for ``sign``: (-1, 1) for "all", else (0, 1)."""
    return _RANGES[canonical_sign(sign)]


def apply_colormap(values: ArrayLike, sign: str, cmap: str | None = None) -> NDArray[np.uint8]:
    """Map normalised ``HxW`` values to ``HxWx4`` uint8 RGBA as imshow(cmap, vmin, vmax) would.

    ``cmap`` replaces Captum's map for the sign (as its ``cmap=`` argument does); the
    value range stays the sign's."""
    name = canonical_sign(sign)
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise ValueError(f"values must be 2-D (H, W), got shape {arr.shape}")
    vmin, vmax = _RANGES[name]
    # Normalize keeps float32 input in float32, as imshow does with Captum's array,
    # so values on a LUT-bin edge fall into the same bin.
    rgba = _cmap(name, cmap)(Normalize(vmin=vmin, vmax=vmax)(arr), bytes=True)
    return np.ascontiguousarray(rgba, dtype=np.uint8)


def colorbar_rgba(
    sign: str, length: int = 256, thickness: int = 12, horizontal: bool = True,
    cmap: str | None = None,
) -> NDArray[np.uint8]:
    """A legend strip for ``sign``: vmin at the left (horizontal) or bottom (vertical).

    Shape ``(thickness, length, 4)`` when horizontal, else ``(length, thickness, 4)``.
    """
    for label, n in (("length", length), ("thickness", thickness)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"colorbar_rgba: {label} must be a positive integer, got {n!r}")
    vmin, vmax = value_range(sign)
    ramp = np.linspace(vmin, vmax, int(length))
    if horizontal:
        grid = np.broadcast_to(ramp[None, :], (int(thickness), int(length)))
    else:
        # Image rows run top-down, so reverse the ramp to put vmax on top.
        grid = np.broadcast_to(ramp[::-1, None], (int(length), int(thickness)))
    return apply_colormap(grid, sign, cmap)


def colorbar_ticks(normalized: NormalizedAttr, n: int = 5) -> list[tuple[float, float]]:
    """``n`` evenly spaced ``(position in [0, 1], attribution value)`` pairs for a colour bar.

    Position 0 is vmin (-1 for "all", else 0) and position 1 is vmax (1); labels are in
    real attribution units: normalised value times ``normalized.scale`` (so for sign
    "negative" the labels run from 0 down to the negative scale).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"colorbar_ticks: n must be an integer >= 2, got {n!r}")
    vmin, vmax = value_range(normalized.sign)
    positions = np.linspace(0.0, 1.0, int(n))
    ticks = []
    for pos in positions:
        value = (vmin + pos * (vmax - vmin)) * normalized.scale
        ticks.append((float(pos), float(value) + 0.0))  # + 0.0 turns -0.0 into 0.0
    return ticks
