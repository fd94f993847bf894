"""PNG, NPZ, JSON and figure files, each written atomically."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..engine.errors import UserError
from .atomic import atomic_write

FIGURE_FORMATS = (".png", ".svg", ".pdf")


def software() -> str:
    """The program named in every file's metadata (matplotlib names only itself)."""
    from .. import __version__

    return f"SegExplorer {__version__}"


def png_info(labels: Mapping[str, str]) -> PngInfo:
    """``labels`` as PNG text chunks (tEXt, or iTXt for text beyond Latin-1), with the
    program that wrote them."""
    info = PngInfo()
    for key, value in {"Software": software(), **labels}.items():
        info.add_text(key, value)
    return info


#: Pillow's (zlib's) default PNG compression level
DEFAULT_PNG_LEVEL = 6


def png_bytes(array: np.ndarray, compress_level: int = DEFAULT_PNG_LEVEL,
              labels: Mapping[str, str] | None = None) -> bytes:
    """An H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA) uint8 array, encoded as a PNG
    (``compress_level`` 0-9: zlib's speed / size trade; the pixels are the same), with
    ``labels`` (what it shows: "Title", "Class", "Method", ...) as text chunks."""
    arr = np.ascontiguousarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"save_png needs uint8 pixels, got {arr.dtype}")
    sink = io.BytesIO()
    Image.fromarray(arr).save(sink, format="PNG", compress_level=compress_level,
                              pnginfo=png_info(labels or {}))
    return sink.getvalue()


def save_png(path: str | Path, array: np.ndarray, labels: Mapping[str, str] | None = None,
             compress_level: int = DEFAULT_PNG_LEVEL) -> Path:
    """An H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA) uint8 array as a PNG, with
    ``labels`` as text chunks (:func:`png_bytes`)."""
    data = png_bytes(array, compress_level, labels)
    return atomic_write(path, lambda f: f.write(data))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``np.savez_compressed``'s file, in memory."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def describe(labels: Mapping[str, str]) -> str:
    """'Class: cow (class 10); Method: Layer Grad-CAM; ...' (every label but the title)."""
    return "; ".join(f"{key}: {value}" for key, value in labels.items() if key != "Title")


def figure_metadata(suffix: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """``labels`` in the keys each format's metadata has (matplotlib's ``metadata=``):
    any text chunk in a PNG; the document information dictionary of a PDF; Dublin Core
    in an SVG. Each names SegExplorer, not only matplotlib."""
    title, text = labels.get("Title", ""), describe(labels)
    if suffix == ".png":
        return {"Software": software(), **labels}
    if suffix == ".pdf":
        return {"Title": title, "Subject": text, "Keywords": text, "Creator": software()}
    return {"Title": title, "Description": text, "Creator": software()}


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
    labels: Mapping[str, str] | None = None,
) -> Path:
    """A figure drawn by Captum's own ``visualize_image_attr`` (the seed's looks).

    Laid out as ``visualize_image_attr_multiple`` lays it out, one panel per
    (method, sign); a panel with nothing of its sign to show (where Captum would
    refuse to scale by 0) shows the image with a note instead of failing the export.
    The format follows the suffix: .png, .svg or .pdf. Vector formats keep each image
    layer as drawn (matplotlib would otherwise composite overlapping images itself, and
    the heat map over the grey image came out about half as strong as in the PNG), and
    their text stays text. ``suptitle`` says what the figure shows (class, method, layer,
    model); ``labels`` go into the file's metadata (:func:`figure_metadata`).

    Each colour bar is labelled in the attribution's own units, as the window's is:
    Captum draws the normalised map (-1..1, or 0..1 for one sign) and labels its bar
    that way; the ticks keep their places and read the values they stand for (the
    normalised value times the scale Captum divided by, :func:`normalize_attr`), with
    the clipping said under the bar. The drawn pixels are Captum's, untouched.
    """
    import matplotlib

    with matplotlib.rc_context({"image.composite_image": False, "svg.fonttype": "none",
                                "pdf.fonttype": 42}):
        return _save_figure(path, attr, image, methods, signs, titles, outlier_perc,
                            show_colorbar, suptitle, cmap, labels or {})


def tick_text(value: float) -> str:
    """A colour bar's label: three significant digits, '1.64e3' (the window's)."""
    if value == 0:
        return "0"
    text = f"{value:.3g}"
    return text.replace("e-0", "e-").replace("e+0", "e")


def label_colorbar(colorbar: Any, attr: np.ndarray, sign: str, outlier_perc: float) -> None:
    """Relabel Captum's colour bar in real units (see :func:`save_figure`)."""
    from ..render.colormaps import colorbar_ticks, value_range
    from ..render.normalize import normalize_attr

    normalized = normalize_attr(attr, sign, outlier_perc)
    if normalized.scale == 0:
        return
    vmin, vmax = value_range(normalized.sign)
    ticks = colorbar_ticks(normalized, 5)
    colorbar.set_ticks([vmin + pos * (vmax - vmin) for pos, _value in ticks],
                       labels=[tick_text(value) for _pos, value in ticks])
    colorbar.ax.tick_params(labelsize=8)
    colorbar.set_label(f"saturates at {tick_text(abs(normalized.scale))} "
                       f"({outlier_perc:g} % clipped)", fontsize=8)


def attribution_figure(attr: np.ndarray, image: np.ndarray, methods: Sequence[str],
                       signs: Sequence[str], titles: Sequence[str] | None = None,
                       outlier_perc: float = 2, show_colorbar: bool = True,
                       suptitle: str | None = None, cmap: str | None = None) -> Any:
    """The matplotlib ``Figure`` :func:`save_figure` writes."""
    from captum.attr import visualization as viz
    from matplotlib.figure import Figure

    if len(methods) != len(signs) or (titles is not None and len(titles) != len(methods)):
        raise ValueError("methods, signs and titles must have the same length")
    attr3 = attr[..., None] if attr.ndim == 2 else attr
    one = len(methods) == 1
    fig = Figure(figsize=(6.4 if one else 4 * len(methods), 6.0 if one else 4.6))
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
            continue
        for drawn in axes[i].get_images():
            if drawn.colorbar is not None:
                label_colorbar(drawn.colorbar, attr, sign, outlier_perc)
    if suptitle:
        fig.suptitle(suptitle, wrap=True)
    fig.tight_layout()
    return fig


def _save_figure(path: str | Path, attr: np.ndarray, image: np.ndarray,
                 methods: Sequence[str], signs: Sequence[str], titles: Sequence[str] | None,
                 outlier_perc: float, show_colorbar: bool, suptitle: str | None,
                 cmap: str | None, labels: Mapping[str, str]) -> Path:
    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise UserError(f"Cannot save a figure as '{suffix or path}': use .png, .svg or .pdf.")
    fig = attribution_figure(attr, image, methods, signs, titles, outlier_perc, show_colorbar,
                             suptitle, cmap)
    metadata = figure_metadata(suffix, {**({"Title": suptitle} if suptitle else {}),
                                        **labels})
    return atomic_write(path, lambda f: fig.savefig(f, format=suffix[1:], bbox_inches="tight",
                                                    dpi=150, metadata=metadata))
