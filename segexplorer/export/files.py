"""PNG, NPZ, JSON and figure files, each written atomically."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..engine.errors import UserError
from .atomic import atomic_write

FIGURE_FORMATS = (".png", ".svg", ".pdf")


#: Pillow's (zlib's) default PNG compression level
DEFAULT_PNG_LEVEL = 6


def png_bytes(array: np.ndarray, compress_level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """An H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA) uint8 array, encoded as a PNG
    (``compress_level`` 0-9: zlib's speed / size trade; the pixels are the same)."""
    arr = np.ascontiguousarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"save_png needs uint8 pixels, got {arr.dtype}")
    sink = io.BytesIO()
    Image.fromarray(arr).save(sink, format="PNG", compress_level=compress_level)
    return sink.getvalue()


def save_png(path: str | Path, array: np.ndarray,
             compress_level: int = DEFAULT_PNG_LEVEL) -> Path:
    """An H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA) uint8 array as a PNG."""
    data = png_bytes(array, compress_level)
    return atomic_write(path, lambda f: f.write(data))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``np.savez_compressed``'s file, in memory."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    data = npz_bytes(arrays)
    return atomic_write(path, lambda f: f.write(data))


def json_text(data: dict) -> str:
    """The JSON the export writes (ValueError on NaN or infinity: JSON has neither)."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def save_json(path: str | Path, data: dict) -> Path:
    text = json_text(data)
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def save_figure(
    path: str | Path,
    attr: np.ndarray,
    image: np.ndarray,
    methods: Sequence[str] = ("original_image", "blended_heat_map", "blended_heat_map"),
    signs: Sequence[str] = ("all", "positive", "negative"),
    titles: Sequence[str] | None = None,
    outlier_perc: float = 2,
    show_colorbar: bool = True,
    suptitle: str | None = None,
    cmap: str | None = None,
) -> Path:
    """A figure drawn by Captum's own ``visualize_image_attr`` (the seed's looks).

    Laid out as ``visualize_image_attr_multiple`` lays it out, one panel per
    (method, sign); a panel with nothing of its sign to show (where Captum would
    refuse to scale by 0) shows the image with a note instead of failing the export.
    The format follows the suffix: .png, .svg or .pdf. Vector formats keep each image
    layer as drawn (matplotlib would otherwise composite overlapping images itself, and
    the heat map over the grey image came out about half as strong as in the PNG), and
    their text stays text. ``suptitle`` says what the figure shows (class, method, model).
    """
    import matplotlib

    with matplotlib.rc_context({"image.composite_image": False, "svg.fonttype": "none",
                                "pdf.fonttype": 42}):
        return _save_figure(path, attr, image, methods, signs, titles, outlier_perc,
                            show_colorbar, suptitle, cmap)


def _save_figure(path: str | Path, attr: np.ndarray, image: np.ndarray,
                 methods: Sequence[str], signs: Sequence[str], titles: Sequence[str] | None,
                 outlier_perc: float, show_colorbar: bool, suptitle: str | None,
                 cmap: str | None) -> Path:
    from captum.attr import visualization as viz
    from matplotlib.figure import Figure

    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise UserError(f"Cannot save a figure as '{suffix or path}': use .png, .svg or .pdf.")
    if len(methods) != len(signs) or (titles is not None and len(titles) != len(methods)):
        raise ValueError("methods, signs and titles must have the same length")
    attr3 = attr[..., None] if attr.ndim == 2 else attr
    fig = Figure(figsize=(4 * len(methods), 4.6))
    axes = np.atleast_1d(fig.subplots(1, len(methods), squeeze=True)).tolist()
    for i, (method, sign) in enumerate(zip(methods, signs)):
        title = titles[i] if titles else None
        try:
            viz.visualize_image_attr(
                attr3, original_image=image, method=method, sign=sign,
                plt_fig_axis=(fig, axes[i]), outlier_perc=outlier_perc, cmap=cmap,
                show_colorbar=show_colorbar, title=title, use_pyplot=False,
            )
        except AssertionError:
            axes[i].imshow(image)
            axes[i].set_axis_off()
            axes[i].set_title(f"{title or method}: no {sign} attribution")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return atomic_write(path, lambda f: fig.savefig(f, format=suffix[1:],
                                                    bbox_inches="tight", dpi=150))
