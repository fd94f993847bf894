"""Drawing a multi-label model's masks, which may overlap and may leave pixels in no class.

One colour per pixel (``decode_segmap``) cannot show two classes at once, so a multi-label
prediction is drawn as **layers**: each class's mask a translucent layer of its colour,
composited in class order ("over"), so that overlaps mix the colours; and each class's
**outline** in its full colour, so that a region nested in another stays visible. Pixels in
no class stay transparent (the image shows through). ``visible`` toggles classes.

numpy only, like the rest of ``render``: the window, the exports and the tests use the
same arrays.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .composite import prepare_image
from .overlays import edge_mask

__all__ = ["LAYER_OPACITY", "changed_pixels", "class_outlines", "mask_layers",
           "multilabel_overlay"]

LAYER_OPACITY = 0.45  # each class's layer: two overlapping classes still show the image


def _check(masks: ArrayLike, colors: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.uint8]]:
    m = np.asarray(masks)
    if m.ndim != 3:
        raise ValueError(f"masks must be C x H x W, got shape {m.shape}")
    lut = np.asarray(colors)
    if lut.ndim != 2 or lut.shape[1] != 3 or len(lut) < len(m):
        raise ValueError(f"colors must hold one [R, G, B] per class ({len(m)}), got shape "
                         f"{lut.shape}")
    return m.astype(bool, copy=False), np.clip(lut, 0, 255).astype(np.uint8)


def _shown(count: int, visible: Iterable[int] | None) -> list[int]:
    if visible is None:
        return list(range(count))
    wanted = sorted({int(c) for c in visible})
    bad = [c for c in wanted if not 0 <= c < count]
    if bad:
        raise ValueError(f"class {bad[0]} is not one of the {count} masks")
    return wanted


def mask_layers(masks: ArrayLike, colors: ArrayLike, opacity: float = LAYER_OPACITY,
                visible: Iterable[int] | None = None) -> NDArray[np.uint8]:
    """H x W x 4 RGBA: each visible class's mask a layer of its colour at ``opacity``,
    composited over the ones before it (class order); transparent where no visible class
    is present."""
    if isinstance(opacity, bool) or not 0.0 <= float(opacity) <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity!r}")
    m, lut = _check(masks, colors)
    h, w = m.shape[1:]
    premultiplied = np.zeros((h, w, 3), dtype=np.float64)
    alpha = np.zeros((h, w), dtype=np.float64)
    a = float(opacity)
    for c in _shown(len(m), visible):
        where = m[c]
        premultiplied[where] = lut[c] * a + premultiplied[where] * (1.0 - a)
        alpha[where] = a + alpha[where] * (1.0 - a)
    out = np.zeros((h, w, 4), dtype=np.uint8)
    some = alpha > 0
    out[some, :3] = np.clip(np.rint(premultiplied[some] / alpha[some, None]), 0, 255)
    out[..., 3] = np.clip(np.rint(alpha * 255), 0, 255).astype(np.uint8)
    return out


def class_outlines(masks: ArrayLike, colors: ArrayLike,
                   visible: Iterable[int] | None = None) -> NDArray[np.uint8]:
    """H x W x 4 RGBA: the one-pixel inner boundary of each visible class's mask in its
    colour, opaque (a later class's outline over an earlier one's where they coincide);
    transparent elsewhere."""
    m, lut = _check(masks, colors)
    out = np.zeros(m.shape[1:] + (4,), dtype=np.uint8)
    for c in _shown(len(m), visible):
        edge = edge_mask(m[c])
        out[edge, :3] = lut[c]
        out[edge, 3] = 255
    return out


def _over(top: NDArray[np.uint8], bottom: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """RGBA ``top`` over an opaque RGB(A) ``bottom``: opaque RGBA."""
    a = top[..., 3:4].astype(np.float64) / 255.0
    mixed = top[..., :3] * a + bottom[..., :3] * (1.0 - a)
    out = np.empty(top.shape[:2] + (4,), dtype=np.uint8)
    out[..., :3] = np.clip(np.rint(mixed), 0, 255)
    out[..., 3] = 255
    return out


def multilabel_overlay(image: ArrayLike, masks: ArrayLike, colors: ArrayLike,
                       opacity: float = LAYER_OPACITY, visible: Iterable[int] | None = None,
                       outlines: bool = True) -> NDArray[np.uint8]:
    """H x W x 4 opaque: the image, the visible classes' layers over it, and their
    outlines on top; pixels in no class show the image unchanged."""
    img = prepare_image(image)
    m = np.asarray(masks)
    if m.ndim != 3 or m.shape[1:] != img.shape[:2]:
        raise ValueError(f"masks are {m.shape} but the image is {img.shape[:2]}")
    shown = list(visible) if visible is not None else None
    out = _over(mask_layers(m, colors, opacity, shown), img)
    if outlines:
        out = _over(class_outlines(m, colors, shown), out)
    return out


def changed_pixels(changed: ArrayLike, image: ArrayLike,
                   color: tuple[int, int, int] = (255, 0, 255)) -> NDArray[np.uint8]:
    """``changed`` (H x W bool) in ``color`` over the dimmed grey image, as
    ``changed_pixels_map`` draws pixels whose class changed: for a multi-label model, the
    pixels whose set of classes changed."""
    from .composite import changed_pixels_map

    flags = np.asarray(changed, dtype=bool)
    return changed_pixels_map(np.zeros(flags.shape, np.int64), flags.astype(np.int64), image,
                              color)
