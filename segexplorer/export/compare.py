"""What ``segexplorer compare`` writes: each model's ``explain`` files under ``a/`` and
``b/`` (``write_explain`` itself), ``compare.json``, ``compare.npz``,
``pixels_changed.png`` and a side-by-side figure per compared class
(``compare_<A's index>_<name>.png``; ``compare_activation.png`` for the activation).

Everything is drawn before the first file is written. A new output folder is filled
under a hidden name beside it and renamed into place when complete, so a failure leaves
no folder at all; an existing folder gets each file atomically.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.compare import ClassPair, CompareSide, Comparison, MapStats, SegmentShift
from ..engine.methods import get_method
from ..render.compare import (
    MAX_LEGEND,
    MapRow,
    TransitionKey,
    changed_pixels_figure,
    changed_pixels_rgba,
    comparison_figure,
    display_shape,
    transition_colors,
)
from .atomic import atomic_folder, write_bytes
from .bundle import class_file_stem, explain_files, library_versions
from .files import json_text, npz_bytes
from .outputs import ARRAYS, FULL, MAPS, REPORT, SEGMENTATION, output_parts

#: the segments listed per class in compare.json (all of them are in compare.npz)
TOP_SEGMENTS = 10

DEFINITIONS = {
    "grid": "every comparison is on the original image's pixel grid; class maps and masks "
            "reach it by nearest neighbour, attribution maps by 'resample'",
    "share": "pixels predicted as the class / all pixels, on each model's working grid "
             "(Prediction.share)",
    "iou": "|A's mask and B's mask| / |A's mask or B's mask| on the grid",
    "score": "each model's class score by the request's aggregation (default: the sum "
             "of the class's logits over the pixels predicted as it, the seed's wrapper), "
             "on its working grid; score_per_pixel divides by the pixels summed over",
    "maps": "over the union of the two masks on the grid (the whole image for the "
            "activation): spearman = Spearman's rank correlation of A's and B's values "
            "(null: a map is constant there); differences are B - A in attribution units: "
            "mean_difference (signed), mean_abs_difference, max_abs_difference; mean_abs_a "
            "and mean_abs_b give each map's scale; spearman_segments (segment methods) "
            "correlates the two models' values of the common segments over the whole image",
    "common_segments": "the intersection of A's and B's predictions on the grid: one "
                       "segment per pair (A's classes, B's classes), or per connected "
                       "region of one ('component'); each model ablates them on its own "
                       "working grid (nearest); feature ablation and Shapley values are "
                       "compared on them (a/ and b/ hold explain's own, on each model's "
                       "own segments)",
    "segments_moved": "delta = score(original) - score(segment ablated), Captum's sign, "
                      "in each model's score units; difference = delta_b - delta_a; "
                      "largest |difference| first, nonzero only",
    "pixels_changed": "pixels whose classes (by name) differ between A and B, grouped by "
                      "A's classes -> B's classes",
}


def _num(value: float | None) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return float(value)


def _stats_json(stats: MapStats) -> dict[str, Any]:
    out: dict[str, Any] = {
        "spearman": _num(stats.spearman),
        "mean_abs_difference": _num(stats.mean_abs_difference),
        "mean_difference": _num(stats.mean_difference),
        "max_abs_difference": _num(stats.max_abs_difference),
        "mean_abs_a": _num(stats.mean_abs_a),
        "mean_abs_b": _num(stats.mean_abs_b),
        "pixels": stats.pixels,
    }
    if stats.segments:
        out["spearman_segments"] = _num(stats.spearman_segments)
        out["segments"] = stats.segments
    return out


def _shift_json(shift: SegmentShift) -> dict[str, Any]:
    return {"segment": shift.segment, "a_classes": list(shift.a_classes),
            "b_classes": list(shift.b_classes), "share": shift.share,
            "delta_a": _num(shift.delta_a), "delta_b": _num(shift.delta_b),
            "difference": _num(shift.difference)}


def _layers(side: CompareSide, methods: tuple[str, ...]) -> dict[str, str]:
    return {m: layer for m in methods if (layer := side.layer(m)) is not None}


def _side_json(side: CompareSide, name: str, methods: tuple[str, ...]) -> dict[str, Any]:
    result = side.result
    h, w = result.prediction.shape
    info = result.model_info
    extra = {m: maps.forward for m, maps in side.common_maps.items()}
    if side.common_sweep is not None:  # the sweep ran before, and ablation reused it
        extra["ablation"] = side.common_sweep.forward_passes
    return {
        "folder": name,
        "model": result.model,
        "weights": result.weights,
        "untrained": result.untrained,
        "device": result.device,
        "precision": result.precision,
        "working_size": [int(h), int(w)],
        "normalization": info.get("normalization"),
        "card": info.get("card"),
        "class_names": list(result.prediction.categories),
        "layers": _layers(side, methods),
        "explain_forward_passes": result.forward_passes,
        "common_segments_forward_passes": extra,
    }


def figure_name(comparison: Comparison, pair: ClassPair) -> str:
    index = pair.a if pair.a is not None else pair.b
    assert index is not None
    return f"{class_file_stem('compare', index, pair.name)}.png"


def compare_report(comparison: Comparison, context: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """compare.json: the shape docs/compare.md describes."""
    c = comparison
    shape_a, shape_b = c.a.prediction.shape, c.b.prediction.shape
    figures = {pair.name: figure_name(c, pair) for pair in _figure_pairs(c)}
    per_class = []
    for row in c.classes:
        entry: dict[str, Any] = {
            "class": row.name, "known_to": row.pair.known_to,
            "index_a": row.pair.a, "index_b": row.pair.b,
            "share_a": row.share_a, "share_b": row.share_b,
            "pixels_a": row.pixels_a, "pixels_b": row.pixels_b,
            "iou": row.iou, "change": row.change,
            "score_a": _num(row.score_a), "score_b": _num(row.score_b),
        }
        for side, index in (("a", row.pair.a), ("b", row.pair.b)):
            score = entry[f"score_{side}"]
            pixels = c.side(side).score_pixels(index) if index is not None else 0
            entry[f"score_per_pixel_{side}"] = score / pixels if score is not None and pixels \
                else None
        entry["maps"] = {m: _stats_json(s) for m, s in row.maps.items()}
        if c.common is not None and row.pair.shared:
            entry["segments_moved"] = [_shift_json(s) for s in row.segments[:TOP_SEGMENTS]]
            entry["segments_moved_count"] = len(row.segments)
        if row.name in figures:
            entry["figure"] = figures[row.name]
        per_class.append(entry)
    report: dict[str, Any] = dict(context or {})
    report.update({
        "grid": list(c.grid),
        "resample": {"class_maps": "nearest", "attribution_maps": c.resample},
        "a": _side_json(c.a, "a", c.methods),
        "b": _side_json(c.b, "b", c.methods),
        "methods": list(c.methods),
        "classes": {"shared": [p.name for p in c.matching.shared],
                    "only_a": [p.name for p in c.matching.only_a],
                    "only_b": [p.name for p in c.matching.only_b]},
        "targets": [p.name for p in c.targets],
        "scores_comparable": shape_a == shape_b,
        "scores_note": ("both models work at the same size: scores compare directly"
                        if shape_a == shape_b else
                        f"A works at {shape_a[1]} x {shape_a[0]} px and B at {shape_b[1]} x "
                        f"{shape_b[0]} px: scores are sums over different pixel counts, "
                        "compare score_per_pixel (or give both the same --size)"),
        "pixels_changed": {
            "pixels": c.changed_pixels, "share": c.changed_share,
            "transitions": [{"from": list(t.before), "to": list(t.after),
                             "pixels": t.pixels, "share": t.share} for t in c.transitions]},
        "per_class": per_class,
    })
    if c.model_maps:
        report["model_maps"] = {m: {**_stats_json(s), "figure": f"compare_{m}.png"}
                                for m, s in c.model_maps.items()}
    if c.common is not None:
        total = float(c.grid[0] * c.grid[1])
        report["common_segments"] = {
            "kind": c.common.kind, "count": c.common.count,
            "segments": [{"id": s.id,
                          "a_classes": [c.a.prediction.categories[k] for k in s.a_classes],
                          "b_classes": [c.b.prediction.categories[k] for k in s.b_classes],
                          "pixels": s.pixels, "share": s.pixels / total}
                         for s in c.common.info]}
    report["definitions"] = DEFINITIONS
    report["versions"] = library_versions()
    return report


def compare_arrays(comparison: Comparison) -> dict[str, np.ndarray]:
    """compare.npz: ``transitions`` (grid, int32: index into pixels_changed.transitions,
    -1 unchanged); with common segments ``segment_ids`` (grid, int32) and, with
    ablation, ``ablation_table_a`` / ``_b`` (common segments in ascending id x each
    model's classes; NaN for a segment too small for that model's grid)."""
    c = comparison
    arrays: dict[str, np.ndarray] = {"transitions": c.transition_map().astype(np.int32)}
    if c.common is not None:
        arrays["segment_ids"] = c.common.ids.astype(np.int32)
        for name, side in (("a", c.a), ("b", c.b)):
            sweep = side.common_sweep
            if sweep is None:
                continue
            table = np.full((c.common.count, sweep.table.shape[1]), np.nan, np.float32)
            for row, seg in enumerate(sweep.segments.info):
                table[seg.id] = sweep.table[row]
            arrays[f"ablation_table_{name}"] = table
    return arrays


def _figure_pairs(comparison: Comparison) -> list[ClassPair]:
    """The target classes whose maps were compared (one figure each)."""
    return [p for p in comparison.targets if p.shared and any(
        get_method(m).per_class and m in row.maps
        for row in comparison.classes if row.pair == p for m in comparison.methods)]


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _summary(stats: MapStats | None) -> str:
    if stats is None:
        return ""
    rho = f"Spearman {_fmt(stats.spearman)}"
    if stats.segments:
        rho += f" (segments {_fmt(stats.spearman_segments)})"
    return (f"{rho}; mean |B - A| {_fmt(stats.mean_abs_difference)}, "
            f"mean {stats.mean_difference:+.3g}, max {_fmt(stats.max_abs_difference)}")


def _method_label(comparison: Comparison, method: str) -> str:
    label = get_method(method).label
    if method in comparison.a.common_maps:
        label += " (common segments)"
    return label


def _side_title(comparison: Comparison, side: str, method: str) -> str:
    layer = comparison.side(side).layer(method)
    return f"{side.upper()}: {comparison.side(side).result.model}" + \
        (f", {layer}" if layer else "")


def _model_title(comparison: Comparison) -> str:
    def one(side: CompareSide) -> str:
        weights = Path(side.result.weights).name
        untrained = " (untrained)" if side.result.untrained and weights != "untrained" else ""
        return f"{side.result.model} [{weights}]{untrained}"

    return f"A = {one(comparison.a)}, B = {one(comparison.b)}"


def _backdrop(comparison: Comparison, image: np.ndarray | None,
              shape: tuple[int, int]) -> np.ndarray:
    """The photo at ``shape``: the original (H x W x 3, the grid's size) when given, else
    A's working image."""
    from ..engine.compare import to_grid

    source = image if image is not None else comparison.a.prediction.image
    return np.asarray(to_grid(np.asarray(source, np.uint8), shape), np.uint8)


def class_figure(comparison: Comparison, pair: ClassPair, image: np.ndarray | None = None,
                 longest: int = 480) -> Any:
    """The side-by-side figure of one class: a row per method (matplotlib Figure);
    ``image``: the original photo (else A's working image is shown)."""
    c = comparison
    shape = display_shape(c.grid, longest)
    shown = _backdrop(c, image, shape)
    row = c.row(pair.name)
    mask_a = c.mask_on_grid("a", pair, shape)
    mask_b = c.mask_on_grid("b", pair, shape)
    rows = []
    for method in c.methods:
        if not get_method(method).per_class or method not in row.maps:
            continue
        a = c.map_on_grid("a", method, pair, shape)
        b = c.map_on_grid("b", method, pair, shape)
        assert a is not None and b is not None
        rows.append(MapRow(_method_label(c, method), a, b, _side_title(c, "a", method),
                           _side_title(c, "b", method), _summary(row.maps[method]),
                           mask_a, mask_b))
    scores = f"score A {_fmt(row.score_a)}, B {_fmt(row.score_b)}"
    title = (f"'{pair.name}': IoU {_fmt(row.iou)}, share A {row.share_a:.1%} / B "
             f"{row.share_b:.1%}, {scores}\n{_model_title(c)}")
    return comparison_figure(shown, rows, title)


def model_map_figure(comparison: Comparison, method: str, image: np.ndarray | None = None,
                     longest: int = 480) -> Any:
    """A map that is the same for every class (the activation): A, B and B - A."""
    c = comparison
    shape = display_shape(c.grid, longest)
    a_pair = next(p for p in c.targets if p.a is not None)
    b_pair = next(p for p in c.targets if p.b is not None)
    a = c.map_on_grid("a", method, a_pair, shape)
    b = c.map_on_grid("b", method, b_pair, shape)
    assert a is not None and b is not None
    row = MapRow(get_method(method).label, a, b, _side_title(c, "a", method),
                 _side_title(c, "b", method), _summary(c.model_maps.get(method)))
    return comparison_figure(_backdrop(c, image, shape), [row],
                             f"{get_method(method).label} (the same for every class)\n"
                             f"{_model_title(c)}")


def pixels_changed_figure(comparison: Comparison, image: np.ndarray | None = None,
                          longest: int = 900) -> Any:
    """pixels_changed.png: the changed pixels coloured by A's class -> B's class."""
    c = comparison
    shape = display_shape(c.grid, longest)
    colors = transition_colors(len(c.transitions))
    rgba = changed_pixels_rgba(_backdrop(c, image, shape), c.transition_map(shape), colors)
    legend = []
    for k, t in enumerate(c.transitions):
        if k >= MAX_LEGEND - 1 and len(c.transitions) > MAX_LEGEND:
            rest = c.transitions[k:]
            legend.append(TransitionKey(f"{len(rest)} other changes",
                                        (int(colors[k][0]), int(colors[k][1]),
                                         int(colors[k][2])),
                                        sum(r.share for r in rest)))
            break
        legend.append(TransitionKey(t.label, (int(colors[k][0]), int(colors[k][1]),
                                              int(colors[k][2])), t.share))
    title = (f"Pixels whose class changed: {c.changed_share:.2%} of the image\n"
             f"{_model_title(c)}")
    return changed_pixels_figure(rgba, legend, title)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def compare_files(comparison: Comparison, context: dict[str, Any] | None = None,
                  image: np.ndarray | None = None, outputs: str = FULL
                  ) -> Iterator[tuple[str, bytes]]:
    """Everything ``compare`` writes as (relative name, bytes), each drawn and encoded
    when asked for, compare.json last: ``a/`` and ``b/`` (``explain_files`` of each side,
    ``outputs``' subset), ``pixels_changed.png`` (with the segmentation part),
    the side-by-side figures (with the maps), ``compare.npz`` (with the arrays).
    ``image``: the original photo (H x W x 3 uint8, the grid's size) behind the
    figures; A's working image when absent."""
    c = comparison
    if image is not None and tuple(image.shape[:2]) != c.grid:
        raise ValueError(f"image {image.shape[:2]} is not the comparison's grid {c.grid}")
    parts = output_parts(outputs)
    for side in ("a", "b"):
        for name, data in explain_files(c.side(side).result, outputs):
            yield f"{side}/{name}", data
    if SEGMENTATION in parts:
        yield "pixels_changed.png", _png(pixels_changed_figure(c, image))
    if MAPS in parts:
        for pair in _figure_pairs(c):
            yield figure_name(c, pair), _png(class_figure(c, pair, image))
        for method in c.model_maps:
            yield f"compare_{method}.png", _png(model_map_figure(c, method, image))
    if ARRAYS in parts:
        yield "compare.npz", npz_bytes(compare_arrays(c))
    if REPORT in parts:
        yield "compare.json", json_text(compare_report(c, context)).encode("utf-8")


def write_compare(out_dir: str | Path, comparison: Comparison,
                  context: dict[str, Any] | None = None, image: np.ndarray | None = None
                  ) -> list[Path]:
    """Write everything into ``out_dir`` (see the module's docstring); the paths written
    (under their final names). ``image``: the original photo (H x W x 3 uint8, the
    grid's size) behind the figures; A's working image when absent."""
    files = list(compare_files(comparison, context, image))  # drawn before any write
    target = Path(out_dir).expanduser()
    with atomic_folder(target) as folder:
        written = []
        for name, data in files:
            (folder / name).parent.mkdir(exist_ok=True)
            written.append(write_bytes(folder / name, data))
    return [target / p.relative_to(folder) for p in written]
