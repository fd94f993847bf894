"""The dataset window's state (no Qt): a batch output folder, what is shown of it, and a
batch run from the window.

A folder that ``segexplorer batch`` wrote (finished, interrupted or still running) is read
in a job (``batch.summary.load_dataset``: the journal is the source of truth); a batch runs
in a job that reports each image and lets the table fill in as it goes. Both are requests
the dataset's planner (:func:`plan_dataset`) asks for from what the user asked
(``folder`` and its reading, ``batch_wanted``), through the same job table as the
explainer's. The user's choices are the class shown, the sort order and the
context-matrix cell picked; ``dataset_view.dataset_view`` turns them into one frozen
view. Double-clicking an image asks (``open_requested``) for it to be opened in the
explainer with the batch's model and options.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...engine.cards import is_card_path
from ...engine.catalog import DEFAULT_SIZE, METHODS
from .choices import METHOD_LABELS, AnalysisChoice, ModelChoice, to_dict
from .events import Event, Field, State, Updates
from .jobbook import JobBook
from .jobtable import Job, JobTable
from .requests import BatchSpec, ReadDataset, RunBatch
from .runner import JobContext, Runner

if TYPE_CHECKING:
    from ...batch.progress import ProgressSnapshot
    from ...batch.run import BatchReport
    from ...batch.summary import Dataset

LOAD, BATCH = ReadDataset.channel, RunBatch.channel
IMAGE, CLASS = "image", "class"  # the table's first columns (sorted by name, not number)
#: a comparison's disagreement (batch --with): the share of an image's pixels whose class
#: changed between A and B; a comparison folder opens sorted by it, the largest first
CHANGED = "changed_share"
RELOAD_WHILE_RUNNING_S = 2.0  # a running batch's folder is read again at most this often


@dataclass(frozen=True)
class OpenRequest:
    """Open an image of the batch in the explainer, with the batch's model and options."""

    path: str
    model: ModelChoice
    analysis: AnalysisChoice
    target: int | None
    card: str | None  # the model card the batch used (the window asks before running code)
    #: ``batch --with``: model B, compared with A in the window (Model > Compare With...)
    compare_with: ModelChoice | None = None
    compare_card: str | None = None  # B's model card, if B is one
    compare_target: str | None = None  # a class only B knows (shown in both views)


@dataclass(frozen=True)
class BatchSettings:
    """What a batch run from the window explains, as the Run Batch dialog chose it."""

    methods: tuple[str, ...] = METHODS  # the batch's default methods
    targets: str = "all"  # 'all' (every predicted class) or names / indices
    size: int | None = DEFAULT_SIZE  # the working size, px; None: the model's own


@dataclass(frozen=True)
class BatchProposal:
    """What Run Batch... offers: to continue the batch of the folder the window shows
    (its input, its folder, its model and options: a batch continues only with its own),
    or a new one with the main window's model and the settings it suggests."""

    source: str
    out: str
    model: ModelChoice
    analysis: AnalysisChoice
    settings: BatchSettings
    continuing: bool
    note: str  # one line: what Run will do
    outputs: str = "full"


@dataclass
class Running:
    """A batch on its way: its output folder and how far it got."""

    out: str
    started: float = field(default_factory=time.monotonic)
    progress: ProgressSnapshot | None = None  # images/s and the time left included
    reloaded: float = 0.0


@dataclass(frozen=True)
class DatasetSituation:
    folder: str | None
    generation: int  # the reading asked for
    read: int  # the reading done
    batch: BatchSpec | None  # the batch asked for, until it ends


def plan_dataset(s: DatasetSituation) -> tuple[ReadDataset | RunBatch, ...]:
    """The dataset's jobs: the batch asked for, and the folder's reading asked for."""
    requests: list[ReadDataset | RunBatch] = []
    if s.batch is not None:
        requests.append(RunBatch(s.batch))
    if s.folder is not None and s.read != s.generation:
        requests.append(ReadDataset(s.folder, s.generation))
    return tuple(requests)


class DatasetState(State):
    """A batch output folder in the window."""

    name = "dataset"
    folder: Field[Path | None] = Field(None)
    class_filter: Field[int | None] = Field(None)
    sort: Field[tuple[str, bool]] = Field((IMAGE, False))
    selected_cell: Field[tuple[int, int] | None] = Field(None)
    dataset: Field[Dataset | None] = Field(None, identity=True)
    batch: Field[Running | None] = Field(None, identity=True)  # a batch on its way
    batch_wanted: Field[BatchSpec | None] = Field(None)
    last_message = Field("")
    generation = Field(0)  # the folder's reading asked for
    read = Field(0)  # the reading done

    def __init__(self, jobs: JobTable) -> None:
        super().__init__()
        self.jobs = jobs
        self.failed: Event[str] = Event()
        self.notice: Event[str] = Event()
        self.open_requested: Event[OpenRequest] = Event()
        self._runs = 0
        jobs.register(ReadDataset, self._read_job, done=self._on_loaded,
                      failed=lambda request, message, _d: self._on_error(message))
        jobs.register(RunBatch, self._batch_job, done=self._on_batch_done,
                      failed=lambda request, message, _d: self._on_batch_failed(message),
                      cancelled=lambda request: self._on_batch_stopped())

    @classmethod
    def on(cls, runner: Runner) -> DatasetState:
        """A dataset state with a job table of its own (tests, scripts)."""
        return cls(JobTable(JobBook(runner), Updates()))

    # ======================================================================= planning
    def schedule(self) -> None:
        situation = DatasetSituation(str(self.folder) if self.folder is not None else None,
                                     self.generation, self.read, self.batch_wanted)
        for request in plan_dataset(situation):
            self.jobs.start(request)

    # ======================================================================= loading
    def open_folder(self, folder: str | Path) -> None:
        """Read a batch output folder (in a job); the view shows it when it arrives."""
        path = Path(folder).expanduser()
        self.update(folder=path, generation=self.generation + 1,
                    **({"selected_cell": None} if self.folder != path else {}))
        self.schedule()

    def reload(self) -> None:
        if self.folder is not None:
            self.open_folder(self.folder)

    def _read_job(self, request: ReadDataset) -> Job:
        path = Path(request.folder)

        def job(state: JobContext) -> object:
            from ...batch.summary import load_dataset

            state.set_progress(0, 1, f"Reading {path.name}")
            return load_dataset(path)

        return Job(job, f"Reading {path.name}", uses_model=False)

    def _on_loaded(self, request: ReadDataset, dataset: Dataset) -> None:
        if Path(request.folder) != self.folder:
            return  # another folder was opened since
        values: dict[str, Any] = {"dataset": dataset, "read": request.generation}
        previous = self.dataset
        if dataset.comparison is not None and self.sort == (IMAGE, False) and (
                previous is None or previous.comparison is None
                or previous.folder != dataset.folder):
            values["sort"] = (CHANGED, True)  # the images the two models disagree on most
        if self.class_filter is not None and self.class_filter not in self.present_classes(
                dataset):
            values["class_filter"] = None
        if self.selected_cell is not None and not dataset.context.images(*self.selected_cell):
            values["selected_cell"] = None
        self.update(**values)
        self.schedule()

    def _on_error(self, message: str) -> bool:
        self.update(last_message=message, read=self.generation)
        self.failed.emit(message)
        return True

    # ======================================================================= choices
    def set_class_filter(self, class_index: int | None) -> None:
        self.class_filter = class_index

    def sort_by(self, column: str, descending: bool | None = None) -> None:
        """Sort the table (and the tiles) by a column; again on the same column reverses."""
        if descending is None:
            same = self.sort[0] == column
            descending = not self.sort[1] if same else column not in (IMAGE, CLASS)
        self.sort = (column, descending)

    def select_cell(self, target: int, ablated: int) -> None:
        """Pick a context-matrix cell: its images are listed."""
        self.selected_cell = (target, ablated)

    def open_image(self, image: str, class_index: int | None = None,
                   class_name: str | None = None) -> None:
        """Open one of the batch's images in the explainer (``open_requested``); a
        comparison's (``batch --with``) opens compared with B. ``class_name``: the row's
        class, for a class only B knows (``class_index`` None)."""
        request = self.open_request(image, class_index, class_name)
        if request is not None:
            self.open_requested.emit(request)

    def open_request(self, image: str, class_index: int | None = None,
                     class_name: str | None = None) -> OpenRequest | None:
        dataset = self.dataset
        if dataset is None:
            return None
        path = dataset.paths.get(image) or str(dataset.folder / "images" / image)
        if not Path(path).is_file():
            self.last_message = (f"Image '{path}' is not there any more: the batch's input "
                                 "has moved.")
            self.failed.emit(self.last_message)
            return None
        model, analysis = batch_choices(dataset.record)
        card = model.architecture if is_card_path(model.architecture) else None
        second = compared_choice(dataset.record)
        if second is None:
            return OpenRequest(path, model, analysis, class_index, card)
        b_card = second.architecture if is_card_path(second.architecture) else None
        return OpenRequest(path, model, analysis, class_index, card, second, b_card,
                           class_name if class_index is None else None)

    # ======================================================================= batches
    def batch_proposal(self, model: ModelChoice, analysis: AnalysisChoice,
                       folder: str = "") -> BatchProposal:
        """What Run Batch... offers. The window shows a batch folder (one it ran and
        stopped, or one opened): continue it, with its own input, model and options. Else
        a new batch of ``folder`` with the main window's ``model`` and ``analysis``, its
        methods the batch's defaults, every class, the model's working size."""
        dataset = self.dataset  # (a comparison, batch --with, continues on the command line)
        args = dict(dataset.record.get("arguments", {})) if dataset is not None else {}
        source = (args.get("input") or {}).get("path") if isinstance(args.get("input"),
                                                                     dict) else None
        if dataset is not None and source and compared_choice(dataset.record) is None:
            own_model, own_analysis = batch_choices(dataset.record)
            own_model = replace(own_model, device=model.device)  # a batch may change device
            size = args.get("size")  # None: the model's own, as the batch was run
            settings = BatchSettings(tuple(args.get("methods") or METHODS),
                                     str(args.get("targets") or "all"),
                                     int(size) if size is not None else None)
            done = len({str(r["image"]) for r in dataset.rows}) + len(dataset.errors)
            note = (f"Continues the batch in {dataset.folder.name}: {done} image"
                    f"{'s' if done != 1 else ''} done are kept, the others explained with "
                    "its own model and options. Another output folder starts a new batch.")
            return BatchProposal(str(source), str(dataset.folder), own_model, own_analysis,
                                 settings, True, note, str(args.get("outputs") or "full"))
        out = str(Path(folder).expanduser()).rstrip("/\\") + "-segexplorer" if folder else ""
        note = "A new batch with the main window's model; a stopped one continues when run " \
               "again with the same folders."
        return BatchProposal(folder, out, model, analysis,
                             BatchSettings(METHODS, "all", model.size), False, note)

    def run_proposal(self, proposal: BatchProposal, source: str | None = None,
                     out: str | None = None, settings: BatchSettings | None = None,
                     memory_gib: float | None = None) -> None:
        """Run what Run Batch... proposed, with the folders and settings the user kept or
        chose (a continued batch whose output folder changed is a new batch)."""
        out = out if out is not None else proposal.out
        continuing = proposal.continuing and Path(out).expanduser() == Path(proposal.out)
        self.run_batch(source if source is not None else proposal.source, out, proposal.model,
                       proposal.analysis, settings or proposal.settings,
                       outputs=proposal.outputs if continuing else "full",
                       memory_gib=memory_gib)

    def run_batch(self, input_folder: str | Path, out_folder: str | Path, model: ModelChoice,
                  analysis: AnalysisChoice, settings: BatchSettings | None = None,
                  outputs: str = "full", memory_gib: float | None = None) -> None:
        """Run ``segexplorer batch`` on a folder in a job; the view follows its progress
        and shows the folder once it is done (or stopped). ``settings``: the methods,
        classes and working size (default: the batch's methods, every class, the model's
        size); ``memory_gib``: the memory budget of every image's session (the
        Preferences'; None: the engine's default)."""
        self._runs += 1
        settings = settings or BatchSettings(METHODS, "all", model.size)
        if settings.size is not None:
            model = replace(model, size=settings.size)
        spec = BatchSpec(str(Path(input_folder).expanduser()),
                         str(Path(out_folder).expanduser()),
                         tuple(to_dict(model).items()), tuple(to_dict(analysis).items()),
                         self._runs, memory_gib, tuple(settings.methods), settings.targets,
                         outputs, settings.size)
        self.jobs.unblock(BATCH)
        self.update(batch=Running(spec.out), batch_wanted=spec)
        self.schedule()

    def cancel_batch(self) -> None:
        """Stop the batch after the image it is on (run it again to continue)."""
        self.jobs.cancel(BATCH)

    def _batch_job(self, request: RunBatch) -> Job:
        from ...engine.analysis import ExplainRequest

        spec = request.key
        model = ModelChoice(**dict(spec.model))  # type: ignore[arg-type]
        analysis = AnalysisChoice(**dict(spec.analysis))  # type: ignore[arg-type]
        card = is_card_path(model.architecture)
        explain = ExplainRequest(
            image="", model=model.architecture,
            weights=None if card and model.weights == "default" else model.weights,
            device=model.device, size=spec.size, methods=spec.methods or METHODS,
            targets=spec.targets, layer=analysis.layer or None, segments=analysis.segments,
            baseline=analysis.baseline, upsample=analysis.upsample,
            aggregation=analysis.aggregation, precision=model.precision,
            gpu_memory=spec.memory_gib)

        def job(state: JobContext) -> object:
            from ...batch.progress import StateProgress
            from ...batch.run import BatchOptions, run_batch

            class Reporter(StateProgress):
                """Each image (and the start) as a ProgressSnapshot: the bar shows the
                images done, the recent images/s and the time left."""

                def start(self, total: int, done_before: int) -> None:
                    super().start(total, done_before)
                    state.partial(self.snapshot())

                def advance(self, ok: bool) -> None:
                    super().advance(ok)
                    state.partial(self.snapshot())

            return run_batch(BatchOptions(spec.source, spec.out, explain,
                                          outputs=spec.outputs), Reporter(state), state)

        return Job(job, f"Batch on {Path(spec.source).name}", uses_model=False,
                   on_partial=self._on_progress)

    def _on_progress(self, value: object) -> None:
        from ...batch.progress import ProgressSnapshot

        batch = self.batch
        if batch is None or not isinstance(value, ProgressSnapshot):
            return
        batch.progress = value
        now = time.monotonic()
        if now - batch.reloaded >= RELOAD_WHILE_RUNNING_S:
            batch.reloaded = now
            self.open_folder(batch.out)  # the rows so far
        self.touch("batch")

    def _on_batch_done(self, request: RunBatch, report: BatchReport) -> None:
        errors = f", {report.errors} could not be explained" if report.errors else ""
        n = report.explained
        message = (f"Batch done: {n} image{'s' if n != 1 else ''} explained{errors}"
                   f" ({report.images_per_second:.2f} images/s).")
        self.update(batch=None, batch_wanted=None, last_message=message)
        self.notice.emit(message)
        self.open_folder(report.folder)

    def _on_batch_failed(self, message: str) -> bool:
        out = self.batch.out if self.batch is not None else None
        self.update(batch=None, batch_wanted=None)
        self._on_error(message)
        if out is not None and (Path(out) / "run.json").is_file():
            self.open_folder(out)
        return True

    def _on_batch_stopped(self) -> None:
        batch = self.batch
        self.update(batch=None, batch_wanted=None)
        if batch is None:
            return
        self.last_message = ("Batch stopped: run it again on the same folders to continue "
                             "where it stopped.")
        self.notice.emit(self.last_message)
        if (Path(batch.out) / "run.json").is_file():
            self.open_folder(batch.out)

    @property
    def running(self) -> bool:
        return self.batch is not None

    # ======================================================================= the view
    def present_classes(self, dataset: Dataset | None = None) -> dict[int, str]:
        dataset = dataset or self.dataset
        if dataset is None:
            return {}
        return {int(r["class_index"]): str(r["class"]) for r in dataset.rows}


def batch_choices(record: Mapping[str, Any]) -> tuple[ModelChoice, AnalysisChoice]:
    """The window's model and analysis choices that reproduce a batch's (the explainer
    keeps its own device)."""
    args = record.get("arguments", {})
    choice = _model_choice(args, str(args.get("model") or "fcn_resnet101"), args.get("weights"),
                           args.get("size"))
    methods = list(args.get("methods") or ["gradcam"])
    analysis = AnalysisChoice(
        method=methods[0] if methods[0] in METHOD_LABELS else "gradcam",
        layer=str(args.get("layer") or ""), aggregation=str(args.get("aggregation", "argmax")),
        upsample=str(args.get("upsample", "nearest")),
        segments=str(args.get("segments", "class")), baseline=str(args.get("baseline", "zero")))
    return choice, analysis


def compared_choice(record: Mapping[str, Any]) -> ModelChoice | None:
    """Model B of a comparison batch (``batch --with``) as the window's choice; None for
    a batch of one model."""
    args = record.get("arguments", {})
    if not args.get("with"):
        return None
    return _model_choice(args, str(args["with"]), args.get("with_weights"),
                         args.get("with_size"))


def _model_choice(args: Mapping[str, Any], model: str, weights: Any, size: Any
                  ) -> ModelChoice:
    if size is None:
        size = _card_size(model) if is_card_path(model) else DEFAULT_SIZE
    return ModelChoice(model, str(weights or "default"), str(args.get("device") or "cpu"),
                       int(size), str(args.get("precision") or "fp32"))


def _card_size(path: str) -> int:
    from ...engine.cards import read_card
    from ...engine.errors import UserError

    try:
        return int(read_card(path).size or DEFAULT_SIZE)
    except UserError:
        return DEFAULT_SIZE


__all__ = ["BATCH", "CHANGED", "LOAD", "BatchProposal", "BatchSettings", "DatasetState",
           "OpenRequest", "batch_choices", "compared_choice", "plan_dataset"]
