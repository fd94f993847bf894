"""Overlays drawn over the working image: outlines, the hidden target, upscaled previews,
and the three views of an ablation (the input the model saw, its new segmentation, the
pixels whose class changed).

numpy only, like the rest of ``render``: the window shows these arrays, the export
layer writes them, and tests compare them pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .composite import changed_pixels_map, segmentation_overlay

__all__ = [
    "ABLATION_VIEWS",
    "OUTLINE_COLOUR",
    "SEGMENTATION_OPACITY",
    "VIEW_AFTER",
    "VIEW_CHANGED",
    "VIEW_INPUT",
    "ablation_views",
    "edge_mask",
    "hide_target",
    "outline_rgba",
    "render_ablation_view",
    "selection_outline",
    "thumbnail_views",
    "upscale_nearest",
]

#: the three views of an ablation, in the order the window's thumbnails show them
VIEW_INPUT, VIEW_AFTER, VIEW_CHANGED = "input", "after", "changed"
ABLATION_VIEWS: tuple[str, ...] = (VIEW_INPUT, VIEW_AFTER, VIEW_CHANGED)
SEGMENTATION_OPACITY = 0.6  # the new segmentation over the ablated input
OUTLINE_COLOUR = (255, 214, 0)
THUMB_SOURCE_PX = 160  # thumbnails are drawn from about this many pixels a side

Views = dict[str, NDArray[np.uint8]]


def hide_target(attribution: NDArray[np.floating] | NDArray[np.integer],
                class_map: ArrayLike, target: int | None = None) -> NDArray[np.floating]:
    """The seed's last view: the target class's own pixels set to 0.

    ``class_map`` is the predicted class map and ``target`` the class; or, without
    ``target``, the target's mask itself (H x W bool: ``Prediction.mask(target)``, which
    for a multi-label model may overlap other classes' masks and is not a class map's).
    """
    attr = np.asarray(attribution)
    where = (np.asarray(class_map, dtype=bool) if target is None
             else np.asarray(class_map) == target)
    return np.where(where, np.zeros_like(attr), attr)


def upscale_nearest(array: NDArray[np.generic], shape: tuple[int, int]) -> NDArray[np.generic]:
    """Nearest-neighbour resize of an H x W (x C) array to ``shape`` (H, W)."""
    h, w = array.shape[:2]
    rows = (np.arange(shape[0]) * h) // shape[0]
    cols = (np.arange(shape[1]) * w) // shape[1]
    return np.ascontiguousarray(array[rows[:, None], cols])


def edge_mask(mask: ArrayLike) -> NDArray[np.bool_]:
    """The one-pixel inner boundary of a boolean mask."""
    m: NDArray[np.bool_] = np.asarray(mask, dtype=bool)
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    edge: NDArray[np.bool_] = m & ~inner
    return edge


def _halo(edge: NDArray[np.bool_]) -> NDArray[np.bool_]:
    ring = np.zeros_like(edge)
    ring[1:, :] |= edge[:-1, :]
    ring[:-1, :] |= edge[1:, :]
    ring[:, 1:] |= edge[:, :-1]
    ring[:, :-1] |= edge[:, 1:]
    return ring & ~edge


def outline_rgba(mask: ArrayLike, color: tuple[int, int, int] = (255, 255, 255),
                 halo: tuple[int, int, int] = (0, 0, 0), alpha: int = 200) -> NDArray[np.uint8]:
    """An RGBA image with the mask's boundary drawn in ``color`` over a dark halo."""
    edge = edge_mask(mask)
    ring = _halo(edge)
    out = np.zeros(edge.shape + (4,), dtype=np.uint8)
    out[ring, :3] = halo
    out[ring, 3] = alpha // 3
    out[edge, :3] = color
    out[edge, 3] = alpha
    return out


def selection_outline(ids: NDArray[np.integer], selected: Iterable[int],
                      colour: tuple[int, int, int] = OUTLINE_COLOUR,
                      halo: tuple[int, int, int] = (0, 0, 0)) -> NDArray[np.uint8]:
    """RGBA: the boundary of each selected segment (also where two selected ones meet)."""
    inside = np.isin(ids, np.asarray(list(selected)))
    edge = np.zeros(ids.shape, dtype=bool)
    vertical = ids[1:, :] != ids[:-1, :]
    horizontal = ids[:, 1:] != ids[:, :-1]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[[0, -1], :] = True  # close the outline along the image's border
    edge[:, [0, -1]] = True
    edge &= inside
    ring = _halo(edge)
    out = np.zeros(ids.shape + (4,), dtype=np.uint8)
    out[ring, :3] = halo
    out[ring, 3] = 150
    out[edge, :3] = colour
    out[edge, 3] = 255
    return out


# ------------------------------------------------------------------ ablation views


def ablation_views(image: NDArray[np.uint8], before: NDArray[np.integer],
                   ablated: NDArray[np.uint8], after: NDArray[np.integer],
                   colors: ArrayLike | None = None) -> Views:
    """The three views of one ablation, drawn in full."""
    return {
        VIEW_INPUT: ablated,
        VIEW_AFTER: segmentation_overlay(ablated, after, SEGMENTATION_OPACITY, colors),
        VIEW_CHANGED: changed_pixels_map(before, after, image),
    }


def _drawn_per_pixel(rgb: NDArray[np.generic]) -> bool:
    # Captum's drawing rescales a whole image whose maximum is <= 1; a uint8 image above
    # that is drawn pixel by pixel, so a part of it is drawn as in the whole.
    return rgb.dtype == np.uint8 and rgb.size > 0 and int(rgb.max()) > 1


def render_ablation_view(name: str, image: NDArray[np.uint8], before: NDArray[np.integer],
                         ablated: NDArray[np.uint8], after: NDArray[np.integer],
                         changed: NDArray[np.bool_],
                         originals: Mapping[str, NDArray[np.uint8]] | None = None,
                         colors: ArrayLike | None = None) -> NDArray[np.uint8]:
    """One view of an ablation (``VIEW_*``).

    With ``originals`` (:func:`ablation_views` of the unablated image, ``ablated=image``,
    ``after=before``) only the pixels that differ from the original are drawn again: both
    drawings are per pixel, so the result is the same array, for a fraction of the time
    when a few segments change.
    """
    if name == VIEW_INPUT:
        return ablated
    if name not in ABLATION_VIEWS:
        raise ValueError(f"unknown ablation view {name!r}")
    if originals is None or not _drawn_per_pixel(ablated):
        return ablation_views(image, before, ablated, after, colors)[name]
    if name == VIEW_CHANGED:
        out: NDArray[np.uint8] = originals[VIEW_CHANGED].copy()
        if changed.any():  # every one of these pixels is drawn in the highlight colour
            out[changed] = changed_pixels_map(before[changed][None], after[changed][None],
                                              image[changed][None])[0]
        return out
    differs = changed | np.any(ablated != image, axis=-1)
    if differs.mean() > 0.5:  # indexing most of the image costs more than drawing it
        return segmentation_overlay(ablated, after, SEGMENTATION_OPACITY, colors)
    overlay: NDArray[np.uint8] = originals[VIEW_AFTER].copy()
    if differs.any():
        part = ablated[differs][None]
        if not _drawn_per_pixel(part):
            return segmentation_overlay(ablated, after, SEGMENTATION_OPACITY, colors)
        overlay[differs] = segmentation_overlay(part, after[differs][None],
                                                SEGMENTATION_OPACITY, colors)[0]
    return overlay


def thumbnail_views(image: NDArray[np.uint8], before: NDArray[np.integer],
                    ablated: NDArray[np.uint8], after: NDArray[np.integer],
                    colors: ArrayLike | None = None) -> Views:
    """The three views drawn from every few pixels: enough for a thumbnail, and cheap."""
    step = max(1, min(image.shape[:2]) // THUMB_SOURCE_PX)
    sub = np.s_[::step, ::step]
    views = ablation_views(image[sub], before[sub], ablated[sub], after[sub], colors)
    return {k: np.ascontiguousarray(v) for k, v in views.items()}
