"""The dataset window's view (no Qt): one frozen :class:`DatasetView` computed from the
dataset state (``dataset.DatasetState``): the table of images x classes with their
figures, the thumbnail tiles in the table's order, the context matrix as coloured cells
with the images behind the picked cell, the errors, a running batch's progress.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...batch.progress import ProgressSnapshot
from ...engine.cards import is_card_path
from ...engine.methods import METHOD_REGISTRY
from .dataset import CHANGED, CLASS, IMAGE, DatasetState
from .events import depends_on

if TYPE_CHECKING:
    from ...batch.summary import Dataset
    from .document import Document

SHARE, SCORE, CONTEXT = "share", "score", "context"
#: a comparison's columns (batch --with) besides the image, the class and CHANGED
IOU, SHARE_A, SHARE_B, SCORE_A, SCORE_B = "iou", "share_a", "share_b", "score_a", "score_b"
_RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool
    tooltip: str = ""


@dataclass(frozen=True)
class TableRow:
    image: str  # the image's key (its path relative to the batch's input)
    class_index: int | None  # None: a class only model B knows (batch --with)
    texts: tuple[str, ...]  # one per column
    class_name: str = ""


@dataclass(frozen=True)
class Tile:
    image: str
    class_index: int | None
    caption: str
    picture: str  # the file the thumbnail shows
    tooltip: str


@dataclass(frozen=True)
class HeatCell:
    text: str  # '-35 %\nn=4'
    color: _RGB
    text_color: _RGB
    tooltip: str


@dataclass(frozen=True)
class HeatmapView:
    classes: tuple[int, ...]  # rows and columns: class indices
    names: tuple[str, ...]
    cells: tuple[tuple[HeatCell | None, ...], ...]  # None: no image holds both classes
    selected: tuple[int, int] | None  # (target class, ablated class)
    caption: str  # what the selected cell means
    images: tuple[tuple[str, str], ...]  # the images behind it: (key, '-35 %')


EMPTY_HEATMAP = HeatmapView((), (), (), None,
                            "No image had an ablation sweep: no context matrix.", ())


@dataclass(frozen=True)
class BatchBar:
    """A running batch's progress bar: images done of how many, and on the bar itself
    the recent images/s and the time left (``batch.progress.ProgressSnapshot``)."""

    done: int
    total: int
    text: str  # on the bar: '12/40 images - 2.31 images/s - ETA 12s'
    line: str  # beside it: the batch's own line (errors and earlier runs included)


def batch_bar(snapshot: ProgressSnapshot) -> BatchBar:
    text = (f"{snapshot.done}/{snapshot.total} images \u2013 {snapshot.rate_text()} \u2013 "
            f"{snapshot.eta_text()}")
    return BatchBar(snapshot.done, snapshot.total, text, snapshot.line())


@dataclass(frozen=True)
class DatasetView:
    title: str
    summary: str
    folder: str
    loaded: bool
    running: bool
    progress: BatchBar | None  # a running batch's, once it has started
    class_choices: tuple[tuple[int | None, str], ...]  # (class, label); None: every class
    class_filter: int | None
    columns: tuple[Column, ...]
    rows: tuple[TableRow, ...]
    sort: tuple[str, bool]  # column key, descending
    tiles: tuple[Tile, ...]
    heatmap: HeatmapView
    errors: tuple[tuple[str, str], ...]  # (image, error)


# the heat map's colours saturate at this relative change: a class with a score near zero
# in some image gives huge relative changes that would wash every other cell out
COLOR_LIMIT = 1.0


def percent(value: float | None, signed: bool = False) -> str:
    """'42 %', '+5 %', '-35 %'; a value that rounds to zero is '0 %' (never '-0 %')."""
    if value is None or not math.isfinite(value):
        return ""
    rounded = round(value * 100)
    if rounded == 0:
        return "0 %"
    return f"{rounded:+d} %" if signed else f"{rounded:d} %"


def method_label(method: str, full: bool = False) -> str:
    """The registry's short (or ``full``) label (a method it no longer has: its name)."""
    info = METHOD_REGISTRY.get(method)
    return method if info is None else info.label if full else info.short_label


def number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.4g}"


def dataset_view(state: DatasetState) -> DatasetView:
    """The dataset window's content for the state (its own view function)."""
    return _ViewMaker(state).make()


@depends_on("dataset", "jobs.dataset", "jobs.batch")
def dataset_window_view(doc: Document, _drawings: object) -> DatasetView:
    """The dataset window's view, as the window's presenters call it."""
    return dataset_view(doc.dataset)


class _ViewMaker:
    def __init__(self, state: DatasetState) -> None:
        self.state = state
        self.class_filter = state.class_filter
        self.sort = state.sort
        self.selected_cell = state.selected_cell

    def make(self) -> DatasetView:
        dataset = self.state.dataset
        running = self.state.batch
        progress = batch_bar(running.progress) \
            if running is not None and running.progress is not None else None
        if dataset is None:
            title = "Dataset - SegExplorer"
            return DatasetView(title, self.state.last_message or "Open a batch output folder, "
                               "or run a batch on a folder of images.",
                               str(self.state.folder or ""), False,
                               running is not None, progress, ((None, "Every class"),), None,
                               (), (), self.sort, (), EMPTY_HEATMAP, ())
        if dataset.comparison is not None:
            return self._compared(dataset, progress)
        present = self.state.present_classes()
        choices: tuple[tuple[int | None, str], ...] = ((None, "Every class"),) + tuple(
            (c, f"{name} ({sum(1 for r in dataset.rows if r['class_index'] == c)})")
            for c, name in sorted(present.items()))
        columns = self._columns(dataset)
        rows = self._rows(dataset, columns)
        return DatasetView(
            title=f"{dataset.folder.name} - Dataset - SegExplorer",
            summary=self._summary(dataset),
            folder=str(dataset.folder),
            loaded=True,
            running=running is not None,
            progress=progress,
            class_choices=choices,
            class_filter=self.class_filter,
            columns=columns,
            rows=rows,
            sort=self.sort,
            tiles=self._tiles(dataset, rows),
            heatmap=self._heatmap(dataset),
            errors=tuple((str(e["image"]), str(e["error"])) for e in dataset.errors),
        )

    # ------------------------------------------------------------ batch --with
    def _compared(self, dataset: Dataset, progress: BatchBar | None
                  ) -> DatasetView:
        """A comparison batch: a row per image x class with the two models' figures; the
        images ordered by how much the models disagree when sorted by CHANGED (the
        default); the tiles show each image's changed pixels."""
        table = dataset.comparison
        assert table is not None
        present = self.state.present_classes()
        choices: tuple[tuple[int | None, str], ...] = ((None, "Every class"),) + tuple(
            (c, name) for c, name in sorted(present.items()))
        columns = [Column(IMAGE, "Image", False), Column(CLASS, "Class", False),
                   Column(CHANGED, "Changed", True, "share of the image's pixels whose "
                          "class differs between A and B (the image's disagreement)"),
                   Column(IOU, "IoU", True, "|A's mask and B's mask| / |A's mask or B's "
                          "mask| on the original grid"),
                   Column(SHARE_A, "Pixels A", True, "share of the image A gives the class"),
                   Column(SHARE_B, "Pixels B", True, "share of the image B gives the class"),
                   Column(SCORE_A, "Score A", True, "the class's score in A"),
                   Column(SCORE_B, "Score B", True, "the class's score in B")]
        for method in table.methods:
            full = method_label(method, full=True)
            columns.append(Column(f"{method}_spearman", f"{method_label(method)} rho", True,
                                  f"Spearman correlation of A's and B's {full} maps over the "
                                  "union of the two masks"))
        rows = [r for r in table.rows
                if self.class_filter is None or r["index_a"] == self.class_filter]
        key, descending = self.sort
        if key not in {c.key for c in columns}:
            key, descending = CHANGED, True

        def sort_value(row: Mapping[str, Any]) -> tuple[int, Any]:
            if key == IMAGE:
                return (0, str(row["image"]))
            if key == CLASS:
                return (0, (str(row["class"]), str(row["image"])))
            return _figure(row.get(key))

        shown = []
        for row in _ordered(rows, sort_value, descending):
            texts = []
            for column in columns:
                value = row.get(column.key)
                if column.key in (IMAGE, CLASS):
                    texts.append(str(value))
                elif column.key in (SCORE_A, SCORE_B):
                    texts.append(number(value))
                elif column.key == IOU or column.key.endswith("_spearman"):
                    texts.append("" if value is None else f"{value:.3f}")
                else:
                    texts.append(percent(value) if column.key != CHANGED
                                 else _fine_percent(value))
            index = row["index_a"]
            shown.append(TableRow(str(row["image"]), None if index is None else int(index),
                                  tuple(texts), str(row["class"])))
        tiles = []
        seen: set[str] = set()
        for table_row in shown:
            if table_row.image in seen:
                continue
            seen.add(table_row.image)
            folder = dataset.image_folder(table_row.image)
            changed = folder / "pixels_changed.png"
            picture = str(changed) if changed.is_file() else dataset.paths.get(
                table_row.image, str(folder / "a" / "segmentation.png"))
            share = table.changed.get(table_row.image)
            caption = f"{Path(table_row.image).name}\nchanged {_fine_percent(share)}"
            names = ", ".join(f"{r['class']} (IoU {r['iou']:.2f})" if r["iou"] is not None
                              else str(r["class"]) for r in table.rows_of(table_row.image))
            tiles.append(Tile(table_row.image, self.class_filter, caption, picture,
                              f"{table_row.image}\n{names}\nDouble-click to compare it"))
        return DatasetView(
            title=f"{dataset.folder.name} - Dataset - SegExplorer",
            summary=self._compared_summary(dataset),
            folder=str(dataset.folder), loaded=True, running=self.state.batch is not None,
            progress=progress, class_choices=choices, class_filter=self.class_filter,
            columns=tuple(columns), rows=tuple(shown), sort=(key, descending),
            tiles=tuple(tiles), heatmap=self._heatmap(dataset),
            errors=tuple((str(e["image"]), str(e["error"])) for e in dataset.errors))

    def _compared_summary(self, dataset: Dataset) -> str:
        args = dataset.record.get("arguments", {})
        table = dataset.comparison
        assert table is not None

        def model(name: Any, weights: Any) -> str:
            text = f"{Path(str(name)).name} (card)" if is_card_path(str(name)) else str(name)
            return text + (f" [{Path(str(weights)).name}]" if weights else "")

        ranked = table.by_disagreement()
        most = (f"; most changed: {Path(ranked[0][0]).name} ({_fine_percent(ranked[0][1])} of "
                "its pixels)") if ranked else ""
        errors = len(dataset.errors)
        return (f"{len(table.changed)} images compared"
                + (f", {errors} could not be" if errors else "")
                + f" - A: {model(args.get('model', '?'), args.get('weights'))}, B: "
                f"{model(args.get('with', '?'), args.get('with_weights'))}{most}. Sorted by "
                "the share of pixels whose class changed; double-click an image to compare "
                "it in the main window.")

    def _summary(self, dataset: Dataset) -> str:
        args = dataset.record.get("arguments", {})
        images = len(dataset.images)
        errors = len(dataset.errors)
        model = str(args.get("model", "?"))
        if is_card_path(model):
            model = f"{Path(model).name} (card)"
        weights = args.get("weights")
        untrained = " - UNTRAINED weights: meaningless predictions" if weights == "untrained" \
            else ""
        text = (f"{images} images explained" + (f", {errors} could not be" if errors else "")
                + f" - {model}{untrained}; segments by {args.get('segments', 'class')}, "
                f"baseline {args.get('baseline', 'zero')}")
        return text

    def _columns(self, dataset: Dataset) -> tuple[Column, ...]:
        columns = [Column(IMAGE, "Image", False), Column(CLASS, "Class", False),
                   Column(SHARE, "Pixels", True, "share of the image's pixels"),
                   Column(SCORE, "Score", True, "the class's aggregated score")]
        for method in dataset.methods:
            label = method_label(method)
            columns.append(Column(f"{method}_outside_share", f"{label} outside", True,
                                  f"share of {method_label(method, full=True)}'s positive "
                                  "attribution outside the class's own segment (high: the "
                                  "prediction leans on context)"))
        if dataset.delta_classes:
            columns.append(Column(CONTEXT, "Needs most", False,
                                  "the other class whose ablation lowers this class's score "
                                  "most, and by how much"))
        return tuple(columns)

    def _rows(self, dataset: Dataset, columns: tuple[Column, ...]) -> tuple[TableRow, ...]:
        rows = [r for r in dataset.rows
                if self.class_filter is None or r["class_index"] == self.class_filter]
        key, descending = self.sort
        if key not in {c.key for c in columns}:
            key, descending = IMAGE, False

        def sort_value(row: Mapping[str, Any]) -> tuple[int, Any]:
            if key == IMAGE:
                return (0, (str(row["image"]), int(row["class_index"])))
            if key == CLASS:
                return (0, (str(row["class"]), str(row["image"])))
            return _figure(_needs_most(dataset, row)[1] if key == CONTEXT else row.get(key))

        table = []
        for row in _ordered(rows, sort_value, descending):
            texts = []
            for column in columns:
                if column.key == IMAGE:
                    texts.append(str(row["image"]))
                elif column.key == CLASS:
                    texts.append(str(row["class"]))
                elif column.key == SHARE:
                    texts.append(percent(row.get("share")))
                elif column.key == SCORE:
                    texts.append(number(row.get("score")))
                elif column.key == CONTEXT:
                    name, change = _needs_most(dataset, row)
                    texts.append(f"{name} {percent(change, signed=True)}" if name else "")
                else:
                    texts.append(percent(row.get(column.key)))
            table.append(TableRow(str(row["image"]), int(row["class_index"]), tuple(texts)))
        return tuple(table)

    def _tiles(self, dataset: Dataset, rows: tuple[TableRow, ...]) -> tuple[Tile, ...]:
        tiles: list[Tile] = []
        seen: set[str] = set()
        sort_column = self.sort[0]
        for row in rows:
            if row.image in seen:
                continue
            seen.add(row.image)
            folder = dataset.image_folder(row.image)
            c = self.class_filter
            picture = _picture(folder, dataset, row.image, c)
            figure = ""
            if c is not None and sort_column not in (IMAGE, CLASS):
                columns = self._columns(dataset)
                keys = [col.key for col in columns]
                if sort_column in keys:
                    at = keys.index(sort_column)
                    figure = f"{columns[at].label}\n{row.texts[at]}" if row.texts[at] else ""
            name = Path(row.image).name
            caption = f"{name}\n{figure}" if figure else name
            classes = ", ".join(str(r["class"]) for r in dataset.rows_of(row.image))
            tiles.append(Tile(row.image, c, caption, picture,
                              f"{row.image}\npredicted: {classes}"))
        return tuple(tiles)

    def _heatmap(self, dataset: Dataset) -> HeatmapView:
        m = dataset.context
        if m.size == 0:
            return EMPTY_HEATMAP
        finite = [abs(float(v)) for v in m.mean.ravel() if math.isfinite(float(v))]
        limit = min(max(max(finite, default=1.0), 1e-6), COLOR_LIMIT)
        colors = _diverging(m.mean, limit)
        cells = []
        for i in range(m.size):
            row: list[HeatCell | None] = []
            for j in range(m.size):
                count = int(m.count[i, j])
                if not count:
                    row.append(None)
                    continue
                value = float(m.mean[i, j])
                text_color: _RGB = (255, 255, 255) if abs(value) > 0.55 * limit else (0, 0, 0)
                tip = (f"{m.names[i]}'s score changes by {percent(value, signed=True)} on "
                       f"average when {m.names[j]} is ablated ({count} image"
                       f"{'s' if count != 1 else ''}). Click to list them.")
                row.append(HeatCell(f"{percent(value, signed=True)}\nn={count}", colors[i][j],
                                    text_color, tip))
            cells.append(tuple(row))
        caption = "Click a cell to list the images behind it."
        images: tuple[tuple[str, str], ...] = ()
        selected = self.selected_cell
        if selected is not None:
            target, ablated = selected
            found = m.images(target, ablated)
            names = dict(zip(m.classes, m.names))
            caption = (f"{names.get(target, target)} when {names.get(ablated, ablated)} is "
                       f"ablated: {len(found)} image{'s' if len(found) != 1 else ''}, the "
                       "largest drop first. Double-click one to explain it.")
            images = tuple((key, percent(change, signed=True)) for key, change in found)
        return HeatmapView(m.classes, m.names, tuple(cells), selected, caption, images)


def _needs_most(dataset: Dataset, row: Mapping[str, Any]) -> tuple[str, float | None]:
    """The other class whose ablation lowers ``row``'s class score most (relative)."""
    from ...batch.summary import delta_column, relative_change

    best: tuple[str, float | None] = ("", None)
    score = row.get("score")
    if score is None:
        return best
    for index, name in dataset.delta_classes:
        if index == row["class_index"]:
            continue
        delta = row.get(delta_column(index, name))
        if delta is None:
            continue
        change = relative_change(float(delta), float(score))
        if change is not None and (best[1] is None or change < best[1]):
            best = (name, change)
    return best


def _figure(value: Any) -> tuple[int, Any]:
    """A numeric sort key; a missing value (None, NaN) sorts last (1)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return (1, 0.0)
    return (0, float(value))


def _ordered(rows: Sequence[Mapping[str, Any]], sort_value: Callable[[Mapping[str, Any]],
                                                                 tuple[int, Any]],
             descending: bool) -> list[Mapping[str, Any]]:
    """``rows`` by ``sort_value`` (stable: equal values keep the rows' order), missing
    values last whatever the direction."""
    present = sorted((r for r in rows if sort_value(r)[0] == 0),
                     key=lambda r: sort_value(r)[1], reverse=descending)
    return present + [r for r in rows if sort_value(r)[0] == 1]


def _fine_percent(value: float | None) -> str:
    """'0.65 %': a share of changed pixels is often under one per cent."""
    if value is None or not math.isfinite(value):
        return ""
    return "0 %" if value == 0 else f"{value * 100:.2f} %"


def _picture(folder: Path, dataset: Dataset, image: str, class_index: int | None) -> str:
    """What a tile shows: the class's explanation when a class is chosen, else the photo
    (or, if it has moved, the segmentation the batch wrote)."""
    if class_index is not None:
        for method in ("gradcam", "ablation", *dataset.methods):
            found = sorted(folder.glob(f"{method}_{class_index}_*.png")) or sorted(
                folder.glob(f"{method}_{class_index}.png"))
            if found:
                return str(found[0])
    original = dataset.paths.get(image, "")
    if original and Path(original).is_file():
        return original
    return str(folder / "segmentation.png")


def _diverging(values: Any, limit: float) -> list[list[_RGB]]:
    """matplotlib's RdBu, centred on zero (the colours of context.png)."""
    from matplotlib import colormaps

    cmap = colormaps["RdBu"]
    out = []
    for row in values:
        colors: list[_RGB] = []
        for value in row:
            v = float(value)
            t = 0.5 + 0.5 * max(-1.0, min(1.0, v / limit)) if math.isfinite(v) else 0.5
            r, g, b, _a = cmap(t)
            colors.append((round(r * 255), round(g * 255), round(b * 255)))
        out.append(colors)
    return out


__all__ = ["Column", "DatasetView", "HeatCell", "HeatmapView", "TableRow", "Tile",
           "dataset_view", "percent"]
