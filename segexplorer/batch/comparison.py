"""The comparison table of ``segexplorer batch --with`` (numpy-free, no torch, no Qt: the
window's dataset document reads it too).

One row per image x class that either model predicts, with the figures of each image's
``compare.json`` (docs/compare.md): the pixel share in A and in B, the IoU of the two
masks, the score in A and in B, and for each method compared, the Spearman correlation
and the difference of the two maps over the union of the masks; and, repeated on each row
of an image, the share of its pixels whose class changed (``changed_share``: the image's
disagreement, by which the dataset window sorts the images).

Each image's journal line carries its rows (``comparison``), so the table is rebuilt
from the journal whatever the order the images finished in, and a continued run gives
the same table as an uninterrupted one (rows sorted by image, then A's class index, then
the class name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine.compare import Comparison

Row = dict[str, Any]

#: the journal line's key for an image's comparison
JOURNAL_KEY = "comparison"
COMPARISON_PARQUET, COMPARISON_CSV = "comparison.parquet", "comparison.csv"
BASE_COLUMNS = ("image", "class", "known_to", "index_a", "index_b", "target", "share_a",
                "share_b", "pixels_a", "pixels_b", "iou", "change", "score_a", "score_b",
                "changed_share")
#: each compared method's columns: ``<method>_<statistic>``
STATISTICS = ("spearman", "mean_difference", "mean_abs_difference", "max_abs_difference")
#: pyarrow types of the columns that are not nullable float64
TYPES = {"image": "string", "class": "string", "known_to": "string", "index_a": "int64",
         "index_b": "int64", "target": "bool_", "pixels_a": "int64", "pixels_b": "int64"}


def _number(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def image_entry(comparison: Comparison) -> dict[str, Any]:
    """What an image's journal line holds of its comparison: the changed pixels and one
    nested row per class (its maps' statistics by method)."""
    c = comparison
    targets = {p.name for p in c.targets}
    classes = []
    for row in c.classes:
        classes.append({
            "class": row.name, "known_to": row.pair.known_to,
            "index_a": row.pair.a, "index_b": row.pair.b, "target": row.name in targets,
            "share_a": row.share_a, "share_b": row.share_b,
            "pixels_a": row.pixels_a, "pixels_b": row.pixels_b,
            "iou": row.iou, "change": row.change,
            "score_a": _number(row.score_a), "score_b": _number(row.score_b),
            "maps": {m: {s: _number(getattr(stats, s)) for s in STATISTICS}
                     for m, stats in row.maps.items()},
        })
    return {"changed_share": float(c.changed_share), "changed_pixels": int(c.changed_pixels),
            "methods": list(c.methods), "classes": classes}


@dataclass(frozen=True)
class ComparisonTable:
    """The comparison rows of a batch folder (flat, sorted) and each image's disagreement."""

    rows: tuple[Row, ...]
    methods: tuple[str, ...]  # compared in some image, in the run's order
    changed: Mapping[str, float]  # image key -> share of its pixels whose class changed

    @property
    def columns(self) -> tuple[str, ...]:
        return BASE_COLUMNS + tuple(f"{m}_{s}" for m in self.methods for s in STATISTICS)

    def by_disagreement(self) -> list[tuple[str, float]]:
        """The images, the largest share of changed pixels first (ties by key)."""
        return sorted(self.changed.items(), key=lambda item: (-item[1], item[0]))

    def rows_of(self, image: str) -> list[Row]:
        return [r for r in self.rows if r["image"] == image]


def comparison_table(entries: Iterable[Mapping[str, Any]],
                     order: Iterable[str] = ()) -> ComparisonTable:
    """The table of the journal ``entries`` that hold a comparison (``order``: the run's
    methods, which come first)."""
    found = [(str(e["key"]), e[JOURNAL_KEY]) for e in entries
             if e.get("status") == "ok" and isinstance(e.get(JOURNAL_KEY), dict)]
    # methods with a figure per class (the activation, one map per image, has none)
    seen = {m for _, c in found for r in c.get("classes", ()) for m in (r.get("maps") or {})}
    ordered = [m for m in order if m in seen]
    methods = tuple(ordered + sorted(seen - set(ordered)))
    rows = []
    for key, entry in found:
        changed = entry.get("changed_share")
        for nested in entry.get("classes", ()):
            flat: Row = {c: nested.get(c) for c in BASE_COLUMNS}
            flat["image"], flat["changed_share"] = key, changed
            maps = nested.get("maps") or {}
            for method in methods:
                values = maps.get(method) or {}
                for stat in STATISTICS:
                    flat[f"{method}_{stat}"] = values.get(stat)
            rows.append(flat)

    def order_key(row: Row) -> tuple[str, int, int, str]:
        index = row["index_a"]
        return (row["image"], index is None, index if index is not None else 0, row["class"])

    return ComparisonTable(tuple(sorted(rows, key=order_key)), methods,
                           {key: float(entry.get("changed_share") or 0.0)
                            for key, entry in found})


def is_comparison(record: Mapping[str, Any]) -> bool:
    """Whether a run record is a comparison's (``batch --with``)."""
    arguments = record.get("arguments")
    return isinstance(arguments, Mapping) and bool(arguments.get("with"))


__all__ = ["BASE_COLUMNS", "COMPARISON_CSV", "COMPARISON_PARQUET", "JOURNAL_KEY", "STATISTICS",
           "TYPES", "ComparisonTable", "comparison_table", "image_entry", "is_comparison"]
