"""Drawing a comparison of two models (numpy + matplotlib, no torch): the pixels whose
class changed, coloured by the change, and the side-by-side maps of a class.

The window's comparison panel and the files ``segexplorer compare`` writes draw with the
same functions. Inputs are plain arrays already on one grid (``engine.compare`` puts
them there); nothing here knows a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike, NDArray

from .composite import dimmed_grey, prepare_image
from .normalize import NormalizedAttr

__all__ = [
    "DIFFERENCE_CMAP",
    "MAP_CMAP",
    "MAX_LEGEND",
    "MapRow",
    "TransitionKey",
    "changed_pixels_figure",
    "changed_pixels_rgba",
    "comparison_figure",
    "display_shape",
    "symmetric",
    "symmetric_rgba",
    "transition_colors",
]

#: A's and B's maps share one symmetric scale in Captum's colours for sign "all"
#: (red negative, white zero, green positive); the difference B - A is drawn in a
#: diverging map of other colours (purple: B lower, orange: B higher), so neither is
#: mistaken for the other
MAP_CMAP = "RdWhGn"
DIFFERENCE_CMAP = "PuOr_r"
#: transitions shown with a colour of their own; smaller ones share the last colour
MAX_LEGEND = 12
_OTHER_COLOUR = (120, 120, 120)


def display_shape(shape: tuple[int, int], longest: int = 640) -> tuple[int, int]:
    """``shape`` (rows, columns) scaled so its longer side is at most ``longest``."""
    h, w = int(shape[0]), int(shape[1])
    scale = min(1.0, longest / max(h, w, 1))
    return max(1, round(h * scale)), max(1, round(w * scale))


def symmetric(*maps: ArrayLike) -> float:
    """The symmetric scale several maps share: their largest absolute value (0: all zero).
    Equal colours then mean equal values, in every map drawn on it."""
    top = max((float(np.max(np.abs(m))) for m in (np.asarray(a) for a in maps) if m.size),
              default=0.0)
    return top if np.isfinite(top) else 0.0


def symmetric_rgba(values: ArrayLike, scale: float, cmap: str = MAP_CMAP,
                   alpha_scaled: bool = True) -> tuple[NDArray[np.uint8], NormalizedAttr]:
    """H x W x 4: ``values`` in ``cmap`` over [-scale, scale] (white at zero for both
    maps: Captum's red-white-green for A and B, :data:`DIFFERENCE_CMAP` for B - A), and
    the normalised map whose ``scale`` labels a colour bar in attribution units.

    ``alpha_scaled``: each pixel's opacity grows with its |value| (transparent at zero,
    opaque at the scale), so the image shows where the map is weak, as in Captum's
    alpha-scaled view; the colour is the colour bar's either way."""
    from .colormaps import apply_colormap

    v = np.asarray(values, np.float64)
    normalized = np.clip(v / scale, -1.0, 1.0) if scale > 0 else np.zeros_like(v)
    rgba = apply_colormap(normalized.astype(np.float32), "all",
                          None if cmap == MAP_CMAP else cmap)
    if alpha_scaled:
        rgba[..., 3] = np.round(255 * np.sqrt(np.abs(normalized))).astype(np.uint8)
    return rgba, NormalizedAttr(normalized.astype(np.float32), float(scale), "all")


def transition_colors(count: int) -> NDArray[np.uint8]:
    """``count`` x 3 distinct colours (matplotlib's tab20 without its greys, darker shades
    first); from :data:`MAX_LEGEND` on, one grey for "other changes"."""
    from matplotlib import colormaps

    table = colormaps["tab20"]
    order = [i for i in list(range(0, 20, 2)) + list(range(1, 20, 2)) if i not in (14, 15)]
    out = np.empty((count, 3), np.uint8)
    for k in range(count):
        if k >= MAX_LEGEND - 1 and count > MAX_LEGEND:
            out[k] = _OTHER_COLOUR
            continue
        r, g, b, _a = table(order[k % len(order)])
        out[k] = (round(r * 255), round(g * 255), round(b * 255))
    return out


def changed_pixels_rgba(image: ArrayLike, transitions: NDArray[np.integer],
                        colors: ArrayLike) -> NDArray[np.uint8]:
    """H x W x 4: the image in dimmed grey where A and B agree (``transitions`` -1),
    each changed pixel in its transition's colour (``colors[k]`` for transition k)."""
    img = prepare_image(image)
    t = np.asarray(transitions)
    if t.shape != img.shape[:2]:
        raise ValueError(f"transitions {t.shape} and image {img.shape[:2]} must have the "
                         "same H, W")
    table = np.asarray(colors, np.uint8).reshape(-1, 3)
    out = np.empty(t.shape + (4,), np.uint8)
    out[..., :3] = dimmed_grey(img)[:, :, None]
    out[..., 3] = 255
    changed = t >= 0
    if changed.any():
        out[changed, :3] = table[t[changed]]
    return out


@dataclass(frozen=True)
class TransitionKey:
    """One line of the changed pixels' legend."""

    label: str  # e.g. 'person -> chair'
    color: tuple[int, int, int]
    share: float  # of the image's pixels


def changed_pixels_figure(rgba: NDArray[np.uint8], legend: Sequence[TransitionKey],
                          title: str, width_in: float = 10.0) -> Figure:
    """The changed pixels with a legend of each change (A's class -> B's class) and its
    share of the image, largest first."""
    from matplotlib.patches import Patch

    h, w = rgba.shape[:2]
    image_w = width_in * 0.66
    figure = Figure(figsize=(width_in, max(2.5, image_w * h / max(w, 1) + 0.8)), dpi=110,
                    layout="constrained")
    ax = figure.add_subplot(1, 1, 1)
    ax.imshow(rgba, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    handles = [Patch(facecolor=(k.color[0] / 255, k.color[1] / 255, k.color[2] / 255), edgecolor="black", linewidth=0.4,
                     label=f"{k.label}: {k.share:.2%}") for k in legend]
    if not handles:
        handles = [Patch(facecolor="white", edgecolor="white",
                         label="no pixel changed class")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False, title="A's class -> B's class", title_fontsize=8)
    return figure


@dataclass(frozen=True)
class MapRow:
    """One method's maps for one class, on one display grid."""

    label: str  # e.g. 'Layer Grad-CAM'
    a: NDArray[np.floating]
    b: NDArray[np.floating]
    title_a: str  # e.g. 'A: body.2'
    title_b: str
    summary: str  # the statistics, e.g. 'Spearman 0.83, mean |B - A| 0.012'
    mask_a: NDArray[np.bool_] | None = None  # outlined (None: a map of no class)
    mask_b: NDArray[np.bool_] | None = None


def _symmetric(*arrays: NDArray[np.floating]) -> float:
    top = max((float(np.max(np.abs(a))) for a in arrays if a.size), default=0.0)
    return top if top > 0 and np.isfinite(top) else 1.0


def _outline(ax: object, mask: NDArray[np.bool_] | None, style: str) -> None:
    if mask is None or not mask.any() or mask.all():
        return
    ax.contour(mask.astype(np.float32), levels=[0.5], colors="black",  # type: ignore[attr-defined]
               linewidths=0.7, linestyles=style)


def comparison_figure(image: NDArray[np.uint8], rows: Sequence[MapRow], title: str,
                      units: str = "attribution") -> Figure:
    """One row per method: the image with both masks outlined (A solid, B dashed), A's
    map and B's on one symmetric scale, and B - A on its own symmetric scale, each with
    a colour bar in attribution units."""
    from .colormaps import colormap_for

    n = max(1, len(rows))
    figure = Figure(figsize=(15.0, 3.3 * n + 0.5), dpi=110, layout="constrained")
    axes = figure.subplots(n, 4, squeeze=False)
    grey = dimmed_grey(prepare_image(image))
    maps_cmap = colormap_for("all")
    for i, row in enumerate(rows):
        ax_img, ax_a, ax_b, ax_d = axes[i]
        ax_img.imshow(grey, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        _outline(ax_img, row.mask_a, "solid")
        _outline(ax_img, row.mask_b, "dashed")
        ax_img.set_title(f"{row.label}\nA's mask solid, B's dashed" if row.mask_a is not None
                         else row.label, fontsize=8)
        top = _symmetric(row.a, row.b)
        for ax, values, name, mask, style in ((ax_a, row.a, row.title_a, row.mask_a, "solid"),
                                              (ax_b, row.b, row.title_b, row.mask_b, "dashed")):
            shown = ax.imshow(values, cmap=maps_cmap, vmin=-top, vmax=top,
                              interpolation="nearest")
            _outline(ax, mask, style)
            ax.set_title(name, fontsize=8)
            figure.colorbar(shown, ax=ax, shrink=0.85).ax.tick_params(labelsize=7)
        difference = np.asarray(row.b, np.float64) - np.asarray(row.a, np.float64)
        spread = _symmetric(difference)
        shown = ax_d.imshow(difference, cmap=DIFFERENCE_CMAP, vmin=-spread, vmax=spread,
                            interpolation="nearest")
        union = None
        if row.mask_a is not None and row.mask_b is not None:
            union = row.mask_a | row.mask_b
        _outline(ax_d, union, "dotted")
        ax_d.set_title(f"B - A ({units} units)\n{row.summary}", fontsize=8)
        bar = figure.colorbar(shown, ax=ax_d, shrink=0.85)
        bar.ax.tick_params(labelsize=7)
        for ax in (ax_img, ax_a, ax_b, ax_d):
            ax.set_xticks([])
            ax.set_yticks([])
    figure.suptitle(title, fontsize=10)
    return figure
