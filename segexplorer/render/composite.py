"""Composite RGBA images: Captum's five visualisation methods plus segmentation views.

Every function returns a C-contiguous ``HxWx4`` uint8 array at the input's resolution,
the pixels matplotlib's Agg backend draws for ``captum.attr.visualization.
visualize_image_attr`` on a figure the size of the image (tested against it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import Normalize
from numpy.typing import ArrayLike, NDArray

from .colormaps import apply_colormap
from .normalize import NormalizedAttr, canonical_sign, normalize_attr
from .palette import _as_class_map, decode_segmap

__all__ = [
    "METHODS",
    "Rendered",
    "alpha_scaling",
    "blended_heat_map",
    "changed_pixels_map",
    "composite_over",
    "dimmed_grey",
    "heat_map",
    "masked_image",
    "original_image",
    "prepare_image",
    "render_attribution",
    "segmentation_overlay",
]

METHODS: tuple[str, ...] = (
    "heat_map",
    "blended_heat_map",
    "masked_image",
    "alpha_scaling",
    "original_image",
)


@dataclass(frozen=True, eq=False)
class Rendered:
    """One rendered attribution view: ``rgba`` (HxWx4 uint8) and how it was made."""

    rgba: NDArray[np.uint8]
    normalized: NormalizedAttr
    method: str
    sign: str


# ----------------------------------------------------------------------------- images


def _captum_image(image: ArrayLike) -> NDArray[Any]:
    """The array Captum draws from: images with max <= 1 become ints 0..255.

    Captum leaves other images in their dtype (uint8 stays uint8), which matters
    for masked_image's float rounding, so this keeps them too.
    """
    arr = np.asarray(image)
    if arr.dtype.kind not in "buif":
        raise ValueError(f"image must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        # Grey images become 3 equal channels: same grey mean, valid RGB for Qt/PNG.
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 (or HxW / HxWx1 grey), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"image is empty (shape {arr.shape})")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError("image contains NaN or infinite values")
    if np.max(arr) <= 1.0:
        # Captum's rule (also applied to an integer image whose max is 0 or 1).
        arr = np.clip((arr * 255).astype(int), 0, 255)
    return arr


def _to_rgb8(arr: NDArray[Any]) -> NDArray[np.uint8]:
    # Captum's _prepare_image: truncate to int, clip to 0..255. Floats above 1 are
    # taken as 0..255 values (matplotlib would clip them to white instead).
    if arr.dtype == np.uint8:
        return arr.astype(np.uint8, copy=False)
    out: NDArray[np.uint8] = np.clip(arr.astype(int), 0, 255).astype(np.uint8)
    return out


def prepare_image(image: ArrayLike) -> NDArray[np.uint8]:
    """``HxWx3`` uint8 from uint8 0..255 or float 0..1 input, converted as Captum does."""
    return np.ascontiguousarray(_to_rgb8(_captum_image(image)))


def _opaque(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
    out = np.empty(rgb.shape[:2] + (4,), dtype=np.uint8)
    out[..., :3] = rgb
    out[..., 3] = 255
    return out


def _check_same_size(norm: NormalizedAttr, image: NDArray[Any]) -> None:
    if norm.values.shape != image.shape[:2]:
        raise ValueError(
            f"attribution is {norm.values.shape[0]}x{norm.values.shape[1]} but image is "
            f"{image.shape[0]}x{image.shape[1]}"
        )


def _check_signed(norm: NormalizedAttr, method: str) -> None:
    if norm.sign == "all":
        raise ValueError(
            f"{method} cannot show positive and negative attribution together; "
            "choose sign positive, negative or absolute_value"
        )


def _grey(image: NDArray[Any]) -> NDArray[np.float64]:
    """Captum's grey: the plain mean of the channels."""
    return np.asarray(np.mean(image, axis=2), dtype=np.float64)


def _grey_rgb8(image: NDArray[Any]) -> NDArray[np.uint8]:
    """imshow(grey, cmap="gray") with its default autoscaling to the grey's min..max."""
    grey = _grey(image)
    rgba = matplotlib.colormaps["gray"](Normalize()(grey), bytes=True)
    return np.asarray(rgba[..., :3], dtype=np.uint8)


# ------------------------------------------------------------------ Captum's methods


def heat_map(norm: NormalizedAttr, cmap: str | None = None) -> NDArray[np.uint8]:
    """Captum's "heat_map": the sign's colour map (or ``cmap``) over the normalised
    values, opaque."""
    return apply_colormap(norm.values, norm.sign, cmap)


def composite_over(rgba: ArrayLike, background: ArrayLike = (255, 255, 255)) -> NDArray[np.uint8]:
    """Flatten straight-alpha RGBA over an opaque background (RGB triple or ``HxWx3``).

    Uses the integer "over" blend of matplotlib's Agg backend (its
    ``fixed_blender_rgba_plain``), so an imshow with alpha over an opaque layer comes
    out bit-identical to Captum's figure; it truncates, so it can sit one level below
    the exactly rounded ``src * a + dst * (1 - a)``.
    """
    top = np.asarray(rgba)
    if top.ndim != 3 or top.shape[2] != 4 or top.dtype != np.uint8:
        raise ValueError(f"rgba must be HxWx4 uint8, got shape {top.shape}, dtype {top.dtype}")
    bottom = np.asarray(background)
    if bottom.shape not in ((3,), top.shape[:2] + (3,)):
        raise ValueError(f"background must be an RGB triple or HxWx3, got shape {bottom.shape}")
    src = top[..., :3].astype(np.int64)
    dst = np.broadcast_to(np.clip(bottom, 0, 255).astype(np.int64), src.shape)
    alpha = top[..., 3:4].astype(np.int64)
    # Agg with an opaque destination: out = (src*256*a + dst*255*(256-a)) // (a + 65280);
    # a == 0 keeps dst, a == 255 copies src (Agg special-cases both).
    r = dst * 255
    blended = ((src << 8) - r) * alpha + (r << 8)
    blended //= alpha + 65280
    rgb = np.where(alpha == 255, src, np.where(alpha == 0, dst, blended))
    return _opaque(rgb.astype(np.uint8))


def blended_heat_map(
    norm: NormalizedAttr, image: ArrayLike, alpha_overlay: float = 0.5,
    cmap: str | None = None,
) -> NDArray[np.uint8]:
    """Captum's "blended_heat_map": the heat map at ``alpha_overlay`` over the grey image.

    The grey is the channel mean autoscaled to its own min..max (imshow's default),
    so a low-contrast photo is stretched to full black..white, as in Captum's figure.
    """
    if isinstance(alpha_overlay, bool) or not 0.0 <= float(alpha_overlay) <= 1.0:
        raise ValueError(f"alpha_overlay must be between 0 and 1, got {alpha_overlay!r}")
    img = _captum_image(image)
    _check_same_size(norm, img)
    heat = heat_map(norm, cmap)
    # matplotlib applies a scalar alpha to the RGBA it hands Agg as a byte,
    # truncating: 0.5 -> 127, not 128.
    heat[..., 3] = np.uint8(float(alpha_overlay) * 255)
    return composite_over(heat, _grey_rgb8(img))


def masked_image(norm: NormalizedAttr, image: ArrayLike) -> NDArray[np.uint8]:
    """Captum's "masked_image": the image multiplied pixel-wise by the normalised values."""
    _check_signed(norm, "masked_image")
    img = _captum_image(image)
    _check_same_size(norm, img)
    return _opaque(_to_rgb8(img * norm.values[:, :, None]))


def alpha_scaling(norm: NormalizedAttr, image: ArrayLike) -> NDArray[np.uint8]:
    """Captum's "alpha_scaling": the image with alpha = normalised value * 255 (truncated).

    The result is translucent; flatten it with :func:`composite_over` (Captum's figure
    shows it over the white axes background).
    """
    _check_signed(norm, "alpha_scaling")
    img = _captum_image(image)
    _check_same_size(norm, img)
    out = np.empty(img.shape[:2] + (4,), dtype=np.uint8)
    out[..., :3] = _to_rgb8(img)
    out[..., 3] = _to_rgb8(norm.values * 255)
    return out


def original_image(image: ArrayLike) -> NDArray[np.uint8]:
    """Captum's "original_image": the image itself, opaque."""
    return _opaque(prepare_image(image))


# --------------------------------------------------------------- segmentation views


def segmentation_overlay(
    image: ArrayLike,
    class_map: ArrayLike,
    opacity: float = 0.6,
    colors: ArrayLike | None = None,
) -> NDArray[np.uint8]:
    """Class colours blended over the image: opacity 0 is the image, 1 pure colours."""
    if isinstance(opacity, bool) or not 0.0 <= float(opacity) <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity!r}")
    img = prepare_image(image)
    seg = decode_segmap(class_map, colors)
    if seg.shape != img.shape:
        raise ValueError(
            f"class_map is {seg.shape[0]}x{seg.shape[1]} but image is {img.shape[0]}x{img.shape[1]}"
        )
    mixed = img * (1.0 - float(opacity)) + seg * float(opacity)
    return _opaque(np.clip(np.rint(mixed), 0, 255).astype(np.uint8))


def changed_pixels_map(
    before: ArrayLike,
    after: ArrayLike,
    image: ArrayLike,
    color: tuple[int, int, int] = (255, 0, 255),
) -> NDArray[np.uint8]:
    """Pixels whose class changed in ``color`` (magenta) over a dimmed grey image, opaque."""
    b = _as_class_map(before, "before")
    a = _as_class_map(after, "after")
    img = prepare_image(image)
    if b.shape != a.shape or b.shape != img.shape[:2]:
        raise ValueError(
            f"before {b.shape}, after {a.shape} and image {img.shape[:2]} must have the same H, W"
        )
    # Dimmed grey keeps the scene readable while no grey level can pass for the highlight.
    out = np.empty(b.shape + (4,), dtype=np.uint8)
    out[..., :3] = dimmed_grey(img)[:, :, None]
    out[..., 3] = 255
    out[b != a, :3] = np.clip(np.asarray(color), 0, 255).astype(np.uint8)
    return out


# rint(mean(r, g, b) * 0.75) for every channel sum r + g + b (0..765): numpy's mean of three
# uint8 is their exact integer sum divided by 3 in float64, so a table of the sum gives
# the same bytes as np.mean (checked for all 2^24 colours) at a fifth of the time.
_DIMMED_GREY = np.rint((np.arange(766) / 3.0) * 0.75).astype(np.uint8)


def dimmed_grey(img: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """An RGB image as one grey channel at three quarters of its brightness (the
    background of the changed-pixel pictures: no grey level can pass for a highlight)."""
    total = img[..., 0].astype(np.uint16)
    total += img[..., 1]
    total += img[..., 2]
    return _DIMMED_GREY[total]


# ---------------------------------------------------------------------- dispatcher


def render_attribution(
    attr2d: ArrayLike,
    image: ArrayLike | None,
    method: str,
    sign: str,
    outlier_perc: float = 2,
    alpha_overlay: float = 0.5,
    cmap: str | None = None,
) -> Rendered:
    """Normalise ``attr2d`` and draw it with one of Captum's ``METHODS``.

    ``image`` may be None only for "heat_map" (as in Captum). ``cmap`` replaces Captum's
    colour map where Captum's drawing uses one (heat maps, blended or not), as its
    ``cmap=`` argument does.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    name = canonical_sign(sign)
    norm = normalize_attr(attr2d, name, outlier_perc)
    if method == "heat_map":
        if image is not None:
            _check_same_size(norm, _captum_image(image))
        rgba = heat_map(norm, cmap)
    elif image is None:
        raise ValueError(f"method {method} needs the original image")
    elif method == "blended_heat_map":
        rgba = blended_heat_map(norm, image, alpha_overlay, cmap)
    elif method == "masked_image":
        rgba = masked_image(norm, image)
    elif method == "alpha_scaling":
        rgba = alpha_scaling(norm, image)
    else:
        _check_same_size(norm, _captum_image(image))
        rgba = original_image(image)
    return Rendered(np.ascontiguousarray(rgba), norm, method, name)
