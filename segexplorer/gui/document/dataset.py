"""The dataset window's document (no Qt): a batch output folder and what is shown of it.

A folder that ``segexplorer batch`` wrote (finished, interrupted or still running) is read
in a job (``batch.summary.load_dataset``: the journal is the source of truth). The
document holds the user's choices (the class shown, the sort order, the context-matrix
cell picked) and presents everything as one frozen :class:`DatasetView`: the table of
images x classes with their figures, the thumbnail tiles in the table's order, the
context matrix as coloured cells with the images behind the picked cell, the errors.
Double-clicking an image asks the main window (``open_requested``) to open it in the
explainer with the batch's model and options. A batch can also be run from here, in a
job that reports each image and lets the table fill in as it goes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ...engine.cards import is_card_path
from ...engine.catalog import DEFAULT_SIZE, METHODS
from .choices import METHOD_LABELS, AnalysisChoice, ModelChoice
from .events import Event
from .runner import JobContext, Runner

if TYPE_CHECKING:
    from ...batch.run import BatchReport
    from ...batch.summary import Dataset

LOAD, BATCH = "dataset", "batch"  # the runner's channels
RELOAD_WHILE_RUNNING_S = 2.0  # a running batch's folder is read again at most this often
IMAGE, CLASS, SHARE, SCORE, CONTEXT = "image", "class", "share", "score", "context"
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
    class_index: int
    texts: tuple[str, ...]  # one per column


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


@dataclass(frozen=True)
class DatasetView:
    title: str
    summary: str
    folder: str
    loaded: bool
    running: bool
    progress: tuple[int, int, str] | None  # done, total, line (a running batch)
    class_choices: tuple[tuple[int | None, str], ...]  # (class, label); None: every class
    class_filter: int | None
    columns: tuple[Column, ...]
    rows: tuple[TableRow, ...]
    sort: tuple[str, bool]  # column key, descending
    tiles: tuple[Tile, ...]
    heatmap: HeatmapView
    errors: tuple[tuple[str, str], ...]  # (image, error)


@dataclass(frozen=True)
class OpenRequest:
    """Open an image of the batch in the explainer, with the batch's model and options."""

    path: str
    model: ModelChoice
    analysis: AnalysisChoice
    target: int | None
    card: str | None  # the model card the batch used (the window asks before running code)


@dataclass(frozen=True)
class BatchProgress:
    done: int
    total: int
    line: str


@dataclass
class _Running:
    out: str
    started: float = field(default_factory=time.monotonic)
    progress: BatchProgress | None = None
    reloaded: float = 0.0


SHORT_METHOD_LABELS = {"gradcam": "Grad-CAM", "activation": "Activation",
                       "ablation": "Ablation"}
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


def method_label(method: str) -> str:
    return SHORT_METHOD_LABELS.get(method, METHOD_LABELS.get(method, method))


def number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.4g}"


class DatasetDocument:
    """A batch output folder in the window."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.dataset: Dataset | None = None
        self.folder: Path | None = None
        self.class_filter: int | None = None
        self.sort: tuple[str, bool] = (IMAGE, False)
        self.selected_cell: tuple[int, int] | None = None
        self.batch: _Running | None = None
        self.last_message = ""
        self.changed: Event[None] = Event()
        self.failed: Event[str] = Event()
        self.notice: Event[str] = Event()
        self.open_requested: Event[OpenRequest] = Event()
        self._view: DatasetView | None = None
        self.device = "cpu"  # the device opened images use (the window sets its own)

    # ======================================================================= loading
    def open_folder(self, folder: str | Path) -> None:
        """Read a batch output folder (in a job); the view shows it when it arrives."""
        path = Path(folder).expanduser()
        if self.folder != path:
            self.selected_cell = None
        self.folder = path

        def job(state: JobContext) -> object:
            from ...batch.summary import load_dataset

            state.set_progress(0, 1, f"Reading {path.name}")
            return load_dataset(path)

        self.runner.submit(LOAD, job, on_result=lambda value: self._on_loaded(path, value),
                           on_error=lambda message, _details: self._on_error(message),
                           label=f"Reading {path.name}", uses_model=False)

    def reload(self) -> None:
        if self.folder is not None:
            self.open_folder(self.folder)

    def _on_loaded(self, folder: Path, value: object) -> None:
        if folder != self.folder:
            return  # another folder was opened since
        self.dataset = cast("Dataset", value)
        if self.class_filter is not None and self.class_filter not in self._present():
            self.class_filter = None
        if self.selected_cell is not None and not self.dataset.context.images(
                *self.selected_cell):
            self.selected_cell = None
        self._changed()

    def _on_error(self, message: str) -> None:
        self.last_message = message
        self.failed.emit(message)
        self._changed()

    # ======================================================================= choices
    def set_class_filter(self, class_index: int | None) -> None:
        if class_index != self.class_filter:
            self.class_filter = class_index
            self._changed()

    def sort_by(self, column: str, descending: bool | None = None) -> None:
        """Sort the table (and the tiles) by a column; again on the same column reverses."""
        if descending is None:
            same = self.sort[0] == column
            descending = not self.sort[1] if same else column not in (IMAGE, CLASS)
        self.sort = (column, descending)
        self._changed()

    def select_cell(self, target: int, ablated: int) -> None:
        """Pick a context-matrix cell: its images are listed."""
        if self.selected_cell != (target, ablated):
            self.selected_cell = (target, ablated)
            self._changed()

    def open_image(self, image: str, class_index: int | None = None) -> None:
        """Open one of the batch's images in the explainer (the main window does it)."""
        request = self.open_request(image, class_index)
        if request is not None:
            self.open_requested.emit(request)

    def open_request(self, image: str, class_index: int | None = None) -> OpenRequest | None:
        dataset = self.dataset
        if dataset is None:
            return None
        path = dataset.paths.get(image) or str(dataset.folder / "images" / image)
        if not Path(path).is_file():
            self.last_message = (f"Image '{path}' is not there any more: the batch's input "
                                 "has moved.")
            self.failed.emit(self.last_message)
            return None
        model, analysis = batch_choices(dataset.record, self.device)
        card = model.architecture if is_card_path(model.architecture) else None
        return OpenRequest(path, model, analysis, class_index, card)

    # ======================================================================= batches
    def run_batch(self, input_folder: str | Path, out_folder: str | Path, model: ModelChoice,
                  analysis: AnalysisChoice) -> None:
        """Run ``segexplorer batch`` on a folder in a job; the view follows its progress
        and shows the folder once it is done (or stopped)."""
        from ...engine.analysis import ExplainRequest

        card = is_card_path(model.architecture)
        request = ExplainRequest(
            image="", model=model.architecture,
            weights=None if card and model.weights == "default" else model.weights,
            device=model.device, size=model.size, methods=METHODS,
            layer=analysis.layer or None, segments=analysis.segments,
            baseline=analysis.baseline, upsample=analysis.upsample,
            aggregation=analysis.aggregation, precision=model.precision)
        out = str(Path(out_folder).expanduser())
        source = str(Path(input_folder).expanduser())
        self.batch = _Running(out)

        def job(state: JobContext) -> object:
            from ...batch.progress import StateProgress
            from ...batch.run import BatchOptions, run_batch

            class Reporter(StateProgress):
                def advance(self, ok: bool) -> None:
                    super().advance(ok)
                    state.partial(BatchProgress(self.done, self.total, self.line()))

            return run_batch(BatchOptions(source, out, request), Reporter(state), state)

        self.runner.submit(BATCH, job, on_result=self._on_batch_done,
                           on_error=lambda message, _d: self._on_batch_failed(message),
                           on_cancelled=self._on_batch_stopped, on_partial=self._on_progress,
                           label=f"Batch on {Path(source).name}", uses_model=False)
        self._changed()

    def cancel_batch(self) -> None:
        self.runner.cancel(BATCH)

    def _on_progress(self, value: object) -> None:
        batch = self.batch
        if batch is None:
            return
        batch.progress = cast(BatchProgress, value)
        now = time.monotonic()
        if now - batch.reloaded >= RELOAD_WHILE_RUNNING_S:
            batch.reloaded = now
            self.open_folder(batch.out)  # the rows so far
        self._changed()

    def _on_batch_done(self, value: object) -> None:
        report = cast("BatchReport", value)
        self.batch = None
        errors = f", {report.errors} could not be explained" if report.errors else ""
        n = report.explained
        self.last_message = (f"Batch done: {n} image{'s' if n != 1 else ''} explained{errors}"
                             f" ({report.images_per_second:.2f} images/s).")
        self.notice.emit(self.last_message)
        self.open_folder(report.folder)

    def _on_batch_failed(self, message: str) -> None:
        out = self.batch.out if self.batch is not None else None
        self.batch = None
        self._on_error(message)
        if out is not None and (Path(out) / "run.json").is_file():
            self.open_folder(out)

    def _on_batch_stopped(self) -> None:
        batch = self.batch
        self.batch = None
        if batch is None:
            return
        self.last_message = ("Batch stopped: run it again on the same folders to continue "
                             "where it stopped.")
        self.notice.emit(self.last_message)
        if (Path(batch.out) / "run.json").is_file():
            self.open_folder(batch.out)
        self._changed()

    @property
    def running(self) -> bool:
        return self.batch is not None

    # ======================================================================= the view
    def _changed(self) -> None:
        self._view = None
        self.changed.emit(None)

    def _present(self) -> dict[int, str]:
        if self.dataset is None:
            return {}
        return {int(r["class_index"]): str(r["class"]) for r in self.dataset.rows}

    def present(self) -> DatasetView:
        if self._view is None:
            self._view = self._make_view()
        return self._view

    def _make_view(self) -> DatasetView:
        dataset = self.dataset
        running = self.batch
        progress = (running.progress.done, running.progress.total, running.progress.line) \
            if running is not None and running.progress is not None else None
        if dataset is None:
            title = "Dataset - SegExplorer"
            return DatasetView(title, self.last_message or "Open a batch output folder, or run "
                               "a batch on a folder of images.", str(self.folder or ""), False,
                               running is not None, progress, ((None, "Every class"),), None,
                               (), (), self.sort, (), _empty_heatmap(), ())
        present = self._present()
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
                                  f"share of {METHOD_LABELS.get(method, method)}'s positive "
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
            value = _needs_most(dataset, row)[1] if key == CONTEXT else row.get(key)
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                return (1, 0.0)  # missing values last, whatever the direction
            return (0, float(value))

        present = sorted((r for r in rows if sort_value(r)[0] == 0),
                         key=lambda r: sort_value(r)[1], reverse=descending)
        missing = [r for r in rows if sort_value(r)[0] == 1]
        table = []
        for row in present + missing:
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
            return _empty_heatmap()
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


def _empty_heatmap() -> HeatmapView:
    return HeatmapView((), (), (), None, "No image had an ablation sweep: no context matrix.",
                       ())


def batch_choices(record: Mapping[str, Any], device: str) -> tuple[ModelChoice, AnalysisChoice]:
    """The window's model and analysis choices that reproduce a batch's (on ``device``)."""
    args = record.get("arguments", {})
    model = str(args.get("model") or "fcn_resnet101")
    weights = args.get("weights") or "default"
    size = args.get("size")
    if size is None:
        size = _card_size(model) if is_card_path(model) else DEFAULT_SIZE
    choice = ModelChoice(model, str(weights), device, int(size),
                         str(args.get("precision") or "fp32"))
    methods = list(args.get("methods") or ["gradcam"])
    analysis = AnalysisChoice(
        method=methods[0] if methods[0] in METHOD_LABELS else "gradcam",
        layer=str(args.get("layer") or ""), aggregation=str(args.get("aggregation", "argmax")),
        upsample=str(args.get("upsample", "nearest")),
        segments=str(args.get("segments", "class")), baseline=str(args.get("baseline", "zero")))
    return choice, analysis


def _card_size(path: str) -> int:
    from ...engine.cards import read_card
    from ...engine.errors import UserError

    try:
        return int(read_card(path).size or DEFAULT_SIZE)
    except UserError:
        return DEFAULT_SIZE


__all__ = ["BATCH", "LOAD", "BatchProgress", "Column", "DatasetDocument", "DatasetView",
           "HeatCell", "HeatmapView", "OpenRequest", "TableRow", "Tile", "batch_choices"]
