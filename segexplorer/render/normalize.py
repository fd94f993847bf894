"""Captum-exact normalisation of attribution maps.

Same numbers as ``captum.attr._utils.visualization._normalize_attr`` (tested against
it), written without importing Captum, plus the scale that maps to +-1 so colour bars
can be labelled in real attribution units.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "SIGNS",
    "NormalizedAttr",
    "canonical_sign",
    "cumulative_sum_threshold",
    "normalize_attr",
]

SIGNS: tuple[str, ...] = ("all", "positive", "negative", "absolute_value")
_SIGN_ALIASES = {"absolute": "absolute_value"}


def canonical_sign(sign: str) -> str:
    """Return Captum's name for ``sign`` ("absolute" -> "absolute_value"); ValueError if unknown."""
    if isinstance(sign, str):
        name = _SIGN_ALIASES.get(sign, sign)
        if name in SIGNS:
            return name
    raise ValueError(f"unknown sign {sign!r}; expected one of {', '.join(SIGNS)} (or 'absolute')")


@dataclass(frozen=True, eq=False)
class NormalizedAttr:
    """A normalised attribution map.

    values: float ``HxW``: in [-1, 1] for sign "all", in [0, 1] otherwise (Captum's output).
    scale: the signed attribution value that maps to 1 (and ``-scale`` to -1 for "all");
        negative for sign "negative", 0.0 when the selected attribution is all zero.
    sign: canonical sign name (one of ``SIGNS``).
    """

    values: NDArray[np.floating]
    scale: float
    sign: str

    @property
    def shape(self) -> tuple[int, int]:
        h, w = self.values.shape
        return int(h), int(w)


def _threshold_index(sorted_vals: NDArray[Any], percentile: float) -> int:
    cum_sums = np.cumsum(sorted_vals)
    # Same expression order as Captum (total * 0.01 * percentile) so the float
    # rounding, and hence the chosen index, is identical.
    hits = np.flatnonzero(cum_sums >= cum_sums[-1] * 0.01 * percentile)
    # Captum raises IndexError when rounding pushes the target above the total
    # (possible at percentile 100); the largest value is the intended answer then.
    return int(hits[0]) if hits.size else len(sorted_vals) - 1


def cumulative_sum_threshold(values: ArrayLike, percentile: float) -> float:
    """Smallest value whose ascending cumulative sum reaches ``percentile`` % of the total.

    Captum's ``_cumulative_sum_threshold``: ``values`` must be non-negative.
    """
    arr = np.asarray(values)
    if arr.size == 0:
        raise ValueError("cumulative_sum_threshold: values is empty")
    _check_percent(percentile, "percentile")
    if np.any(arr < 0):
        raise ValueError("cumulative_sum_threshold: values must be non-negative")
    sorted_vals = np.sort(arr, axis=None)
    return float(sorted_vals[_threshold_index(sorted_vals, float(percentile))])


def _check_percent(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= float(value) <= 100:
        raise ValueError(f"{name} must be a number between 0 and 100 inclusive, got {value!r}")


def _as_attr2d(attr: ArrayLike) -> NDArray[np.floating]:
    arr = np.asarray(attr)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"attribution must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 3:
        # Captum sums channels of an HxWxC attribution (in the input dtype).
        arr = np.sum(arr, axis=2)
    elif arr.ndim != 2:
        raise ValueError(f"attribution must be HxW or HxWxC, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"attribution is empty (shape {arr.shape})")
    # float32/float64 keep their dtype so the sort/cumsum rounding matches Captum's;
    # ints and bools are exact in float64, float16 would overflow its cumsum.
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("attribution contains NaN or infinite values")
    return arr


def normalize_attr(attr2d: ArrayLike, sign: str, outlier_perc: float = 2) -> NormalizedAttr:
    """Normalise an attribution exactly as Captum's ``visualize_image_attr`` does.

    ``attr2d`` is ``HxW`` or ``HxWxC`` (channels summed). Values of the chosen ``sign``
    are divided by the threshold that leaves ``outlier_perc`` % of the total absolute
    attribution above it, then clipped to [-1, 1]. Where Captum would assert on a zero
    threshold (nothing of that sign), this returns zeros with ``scale`` 0.0.
    """
    name = canonical_sign(sign)
    _check_percent(outlier_perc, "outlier_perc")
    arr = _as_attr2d(attr2d)

    if name == "positive":
        arr = np.maximum(arr, 0)
    elif name == "negative":
        arr = np.minimum(arr, 0)
    elif name == "absolute_value":
        arr = np.abs(arr)

    magnitudes = np.sort(np.abs(arr), axis=None)
    # 100.0 - outlier_perc as a Python float, as Captum computes it.
    threshold = magnitudes[_threshold_index(magnitudes, 100.0 - float(outlier_perc))]
    if name == "negative":
        # Dividing by a negative threshold turns the negative values into [0, 1].
        threshold = -threshold
    if threshold == 0:
        values, scale = np.zeros(arr.shape, dtype=arr.dtype), 0.0
    else:
        values, scale = np.clip(arr / threshold, -1, 1), float(threshold)
    values.flags.writeable = False  # shared by views and exports; frozen like its holder
    return NormalizedAttr(values, scale, name)
