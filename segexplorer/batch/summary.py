"""What a batch found across its images, computed from its journal (numpy only; no torch,
no Qt: the window's dataset document reads it too).

* the summary: one row per image x predicted class (pixels, share, score, the model's
  ``outputs``, each method's statistics, the score's change when each class's segments
  are ablated; for multi-label models the share of the image the class shares with each
  other class, ``overlap_<k>_<name>``);
* the errors: one line per image that could not be explained;
* the **context matrix**: for target class c and ablated class k, the mean relative
  change of c's score when k's segments are ablated, ``(ablated - original) / |original|``,
  over the images where both were predicted, with the count and the images behind each
  cell (-0.3: c loses 30 % of its score without k: the model needs to see k to find c);
* per class and method, the images ranked by how much the prediction leans outside the
  object: the share of the class's positive attribution outside its own segment.

The summary's row order is fixed (image key, then class index), so a resumed run and an
uninterrupted one give the same tables.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .comparison import ComparisonTable, comparison_table, is_comparison
from .record import Journal, read_record

BASE_COLUMNS = ("image", "class_index", "class", "pixels", "share", "score", "target",
                "outputs")
STATISTICS = ("outside_share", "inside_mean", "outside_mean")
Row = dict[str, Any]


def slug(name: str) -> str:
    """A class name reduced to letters and digits (as explain's file names have it)."""
    return re.sub(r"[^a-z0-9]+", "", name.lower())


def delta_column(index: int, name: str) -> str:
    """'delta_15_person': class 15's segments ablated."""
    text = slug(name)
    return f"delta_{index}_{text}" if text else f"delta_{index}"


def overlap_column(index: int, name: str) -> str:
    """'overlap_2_tumourcore': the share of the image in both the row's class and class 2
    (multi-label models)."""
    text = slug(name)
    return f"overlap_{index}_{text}" if text else f"overlap_{index}"


@dataclass(frozen=True)
class ContextMatrix:
    """Mean relative change of each target class's score when each class is ablated."""

    classes: tuple[int, ...]  # class indices, ascending (rows and columns)
    names: tuple[str, ...]
    mean: np.ndarray  # n x n float64; NaN where no image holds both classes
    count: np.ndarray  # n x n int64: images holding both (with a usable score)
    cells: Mapping[tuple[int, int], tuple[tuple[str, float], ...]] = field(repr=False)

    def images(self, target: int, ablated: int) -> tuple[tuple[str, float], ...]:
        """(image key, relative change) behind a cell, the largest drop first."""
        return self.cells.get((target, ablated), ())

    @property
    def size(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class Dataset:
    """A batch output folder, read: its arguments, rows, errors and insight."""

    folder: Path
    record: Mapping[str, Any]
    rows: tuple[Row, ...]  # flat summary rows, sorted by (image, class_index)
    errors: tuple[Row, ...]  # image, path, error; sorted by image
    methods: tuple[str, ...]  # methods with per-class statistics, in the run's order
    delta_classes: tuple[tuple[int, str], ...]  # classes some image had ablated
    context: ContextMatrix
    paths: Mapping[str, str] = field(repr=False)  # image key -> the path it was read from
    overlap_classes: tuple[tuple[int, str], ...] = ()  # classes some class overlapped
    #: ``batch --with``: the two models' comparison per image x class (else None)
    comparison: ComparisonTable | None = field(default=None, repr=False)

    @property
    def columns(self) -> tuple[str, ...]:
        stats = tuple(f"{m}_{s}" for m in self.methods for s in STATISTICS)
        deltas = tuple(delta_column(i, n) for i, n in self.delta_classes)
        overlaps = tuple(overlap_column(i, n) for i, n in self.overlap_classes)
        return BASE_COLUMNS + overlaps + stats + deltas

    @property
    def images(self) -> tuple[str, ...]:
        """Every explained image's key, sorted."""
        return tuple(sorted({r["image"] for r in self.rows}))

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.record.get("classes") or ())

    def image_folder(self, key: str) -> Path:
        return self.folder / "images" / key

    def rows_of(self, key: str) -> list[Row]:
        return [r for r in self.rows if r["image"] == key]

    def leaning(self, class_index: int, method: str) -> list[tuple[str, float]]:
        """Images of a class ranked by the share of its positive attribution outside its
        own segment (largest first; ties by image key)."""
        column = f"{method}_outside_share"
        found = [(r["image"], r[column]) for r in self.rows
                 if r["class_index"] == class_index and r.get(column) is not None]
        return sorted(found, key=lambda item: (-item[1], item[0]))

    def leaning_table(self) -> list[Row]:
        table = []
        present = sorted({(r["class_index"], r["class"]) for r in self.rows})
        for index, name in present:
            for method in self.methods:
                pixels = {r["image"]: r["pixels"] for r in self.rows
                          if r["class_index"] == index}
                for rank, (key, share) in enumerate(self.leaning(index, method), 1):
                    table.append({"class_index": index, "class": name, "method": method,
                                  "rank": rank, "image": key, "outside_share": share,
                                  "pixels": pixels[key]})
        return table

    def context_table(self) -> list[Row]:
        m = self.context
        table = []
        for i, target in enumerate(m.classes):
            for j, ablated in enumerate(m.classes):
                if m.count[i, j]:
                    table.append({"target_index": target, "target_class": m.names[i],
                                  "ablated_index": ablated, "ablated_class": m.names[j],
                                  "mean_relative_change": float(m.mean[i, j]),
                                  "images": int(m.count[i, j])})
        return table


def load_dataset(folder: str | Path) -> Dataset:
    """Read a batch output folder (finished, interrupted or still running)."""
    folder = Path(folder).expanduser()
    record = read_record(folder)
    journal = Journal.open(folder, repair=False)
    return build_dataset(folder, record, journal.entries.values())


def build_dataset(folder: Path, record: Mapping[str, Any],
                  entries: Iterable[Mapping[str, Any]]) -> Dataset:
    entries = sorted(entries, key=lambda e: e["key"])
    categories = tuple(record.get("classes") or ())
    ok = [e for e in entries if e.get("status") == "ok"]
    errors = tuple({"image": e["key"], "path": e.get("path", ""), "error": e.get("error", "")}
                   for e in entries if e.get("status") == "error")
    nested = [row for e in ok for row in e.get("rows", ())]
    methods = _methods(nested, record)
    ablated = sorted({int(k) for row in nested for k in (row.get("ablation") or {})})
    names = {r["class_index"]: r["class"] for r in nested}
    delta_classes = tuple((k, _name(k, categories, names)) for k in ablated)
    overlapped = sorted({int(k) for row in nested for k in (row.get("overlaps") or {})})
    overlap_classes = tuple((k, _name(k, categories, names)) for k in overlapped)
    rows = tuple(sorted((_flatten(r, methods, delta_classes, overlap_classes) for r in nested),
                        key=lambda r: (r["image"], r["class_index"])))
    paths = {e["key"]: e.get("path", "") for e in entries}
    context = context_matrix(nested, categories, names)
    comparison = comparison_table(ok, record.get("arguments", {}).get("methods", ())) \
        if is_comparison(record) else None
    return Dataset(folder, record, rows, errors, methods, delta_classes, context, paths,
                   overlap_classes, comparison)


def _name(index: int, categories: tuple[str, ...], seen: Mapping[int, str]) -> str:
    if index in seen:
        return str(seen[index])
    return categories[index] if index < len(categories) else f"class {index}"


def _methods(rows: list[Row], record: Mapping[str, Any]) -> tuple[str, ...]:
    seen = {m for r in rows for m in (r.get("methods") or {})}
    ordered = [m for m in record.get("arguments", {}).get("methods", ()) if m in seen]
    return tuple(ordered + sorted(seen - set(ordered)))


def _flatten(row: Row, methods: tuple[str, ...], delta_classes: tuple[tuple[int, str], ...],
             overlap_classes: tuple[tuple[int, str], ...] = ()) -> Row:
    flat = {name: row.get(name) for name in BASE_COLUMNS}
    overlaps = row.get("overlaps")
    for index, name in overlap_classes:  # a multi-label row: 0 where the classes do not meet
        value = None if overlaps is None else overlaps.get(str(index), 0.0)
        flat[overlap_column(index, name)] = None if index == row["class_index"] else value
    stats = row.get("methods") or {}
    for method in methods:
        values = stats.get(method) or {}
        for stat in STATISTICS:
            flat[f"{method}_{stat}"] = values.get(stat)
    deltas = row.get("ablation") or {}
    for index, name in delta_classes:
        value = deltas.get(str(index))
        flat[delta_column(index, name)] = None if value is None else float(value)
    return flat


def relative_change(delta: float, score: float) -> float | None:
    """``(ablated - original) / |original|`` from Captum's delta (original - ablated)."""
    if score == 0 or not math.isfinite(score) or not math.isfinite(delta):
        return None
    return -delta / abs(score)


def context_matrix(rows: list[Row], categories: tuple[str, ...] = (),
                   names: Mapping[int, str] | None = None) -> ContextMatrix:
    names = dict(names or {})
    cells: dict[tuple[int, int], list[tuple[str, float]]] = {}
    for row in rows:
        target = int(row["class_index"])
        for key, delta in (row.get("ablation") or {}).items():
            change = relative_change(float(delta), float(row["score"]))
            if change is not None:
                cells.setdefault((target, int(key)), []).append((row["image"], change))
    classes = tuple(sorted({c for pair in cells for c in pair}))
    position = {c: i for i, c in enumerate(classes)}
    n = len(classes)
    mean = np.full((n, n), np.nan)
    count = np.zeros((n, n), np.int64)
    for (target, ablated), found in cells.items():
        i, j = position[target], position[ablated]
        count[i, j] = len(found)
        mean[i, j] = math.fsum(v for _, v in found) / len(found)
    ordered = {pair: tuple(sorted(found, key=lambda item: (item[1], item[0])))
               for pair, found in cells.items()}
    return ContextMatrix(classes, tuple(_name(c, categories, names) for c in classes),
                         mean, count, ordered)
