"""``segexplorer batch``: explain every image of a folder, a glob or a list, resumably.

The shape of a run (the same for both engines):

1. resolve the input and list its images (keys: relative paths); check the output folder
   and its run record (``run.json``: other arguments are refused in one line); take the
   folder's lock (one writer at a time);
2. read the journal (``journal.jsonl``; a torn last line is cut off), drop the leftovers
   of a killed run (``.partial/``), and keep the images without a journal line;
3. the engine explains them: locally, a loop over images with one loaded model while a
   background thread decodes and preprocesses the next ones; on Ray, the same per-image
   function in an actor pool (``ray_engine``);
4. this process alone writes: each image's files go into a fresh folder under
   ``.partial/``, which is renamed into ``images/<key>/`` once complete; only then is the
   image's journal line appended (fsynced). A kill at any moment leaves whole folders
   and whole lines;
5. the dataset files (summary, errors, context matrix, leaning) are written from the
   journal, each atomically, at the end (also after Ctrl+C or a cancel).

Nothing here is a scheduler: the local engine is a plain loop, Ray's is Ray Data's.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..engine.analysis import ExplainRequest, parse_methods
from ..engine.baselines import parse_baseline
from ..engine.cards import is_card_path
from ..engine.errors import Cancelled, UserError
from ..engine.jobs import JobState, check_cancelled
from ..export.atomic import check_folder, ensure_folder, write_bytes
from .inputs import BatchInput, BatchItem, list_items, resolve_input
from .progress import BatchProgress, QuietProgress
from .record import Journal, check_record, write_record

ENGINES = ("local", "ray")
PARTIAL = ".partial"
LOCK_FILE = ".lock"
IMAGES = "images"
DEFAULT_PREFETCH = 4  # images decoded ahead of the model

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class BatchOptions:
    input: str
    out: str
    request: ExplainRequest  # the options of every image (its image field is unused)
    engine: str = "local"
    address: str | None = None  # Ray: None starts a local Ray; 'auto' or HOST:PORT joins one
    actors: int | None = None  # Ray: how many actors hold a model (default: see ray_engine)
    prefetch: int = DEFAULT_PREFETCH
    retry_errors: bool = False  # images that failed before are tried again


@dataclass(frozen=True)
class BatchReport:
    folder: Path
    total: int  # images in the input
    done_before: int  # finished by earlier runs
    explained: int  # explained by this run
    errors: int  # failed in this run
    seconds: float  # this run's time on images (the model's loading excluded)
    model: str = ""
    untrained: bool = False
    device: str = ""
    written: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def images_per_second(self) -> float:
        done = self.explained + self.errors
        return done / self.seconds if self.seconds > 0 else 0.0


def record_arguments(options: BatchOptions, spec: BatchInput) -> dict[str, Any]:
    """What run.json compares: everything that decides the outputs' content."""
    req = options.request
    model = str(Path(req.model).expanduser().resolve()) if is_card_path(req.model) else req.model
    weights = req.weights
    if weights not in (None, "default", "untrained"):
        weights = str(Path(weights).expanduser().resolve())
    return {
        "input": spec.describe(),
        "model": model,
        "weights": weights,
        "size": req.size,
        "targets": req.targets.strip().lower() if req.targets.strip().lower() == "all"
        else req.targets,
        "methods": list(parse_methods(req.methods)),
        "layer": req.layer,
        "segments": req.segments,
        "baseline": parse_baseline(req.baseline).label,
        "upsample": req.upsample,
        "aggregation": req.aggregation,
        "precision": req.precision,
    }


class BatchWriter:
    """The one writer of a batch folder: image folders, then journal lines."""

    def __init__(self, folder: Path, journal: Journal, arguments: dict[str, Any],
                 extra: dict[str, Any]) -> None:
        self.folder = folder
        self.journal = journal
        self.arguments = arguments
        self.extra = dict(extra)
        self.partials = folder / PARTIAL

    def write_record(self, **updates: Any) -> None:
        self.extra.update(updates)
        write_record(self.folder, self.arguments, self.extra)

    def set_classes(self, categories: Iterable[str]) -> None:
        names = list(categories)
        if self.extra.get("classes") != names:
            self.write_record(classes=names)

    def new_partial(self) -> Path:
        path = self.partials / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    def write_files(self, partial: Path, files: Iterable[tuple[str, bytes]]) -> None:
        for name, data in files:
            write_bytes(partial / name, data)

    def commit(self, entry: dict[str, Any], partial: Path | None) -> None:
        """Put the image's folder in place (if it was explained), then journal it."""
        final = self.folder / IMAGES / entry["key"]
        if final.is_dir():  # left by a run killed before its journal line
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        if entry["status"] == "ok" and partial is not None:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, final)
            _fsync_dir(final.parent)
        elif partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        self.journal.append(entry)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def prefetched(items: Iterable[T], prepare: Callable[[T], R], depth: int) -> Iterator[R]:
    """``prepare(item)`` for each item, computed up to ``depth`` items ahead in one
    background thread (decoding and resizing release the GIL); results in order."""
    if depth <= 0:
        for item in items:
            yield prepare(item)
        return
    source = iter(items)
    window: deque[Future[R]] = deque()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segexplorer-prefetch")
    try:
        def fill() -> None:
            while len(window) < depth:
                item = next(source, _END)
                if item is _END:
                    return
                window.append(pool.submit(prepare, item))  # type: ignore[arg-type]

        fill()
        while window:
            result = window.popleft().result()
            fill()
            yield result
    finally:
        for future in window:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


_END = object()


class _CancelOnly:
    """A JobState that only passes cancellation through (an image's own progress would
    fight the batch's bar)."""

    def __init__(self, state: JobState | None) -> None:
        self._state = state

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        pass

    def is_cancelled(self) -> bool:
        return self._state is not None and self._state.is_cancelled()


def run_batch(options: BatchOptions, progress: BatchProgress | None = None,
              state: JobState | None = None,
              on_model: Callable[[Any], None] | None = None) -> BatchReport:
    """Explain every image of ``options.input`` not yet done in ``options.out``."""
    from filelock import FileLock, Timeout

    if options.engine not in ENGINES:
        raise UserError(f"Unknown engine '{options.engine}': use local or ray.")
    if options.address and options.engine != "ray":
        raise UserError("--address is for --engine ray: add --engine ray, or leave "
                        "--address out.")
    request = options.request
    parse_methods(request.methods)
    parse_baseline(request.baseline)
    spec = resolve_input(options.input)
    folder = check_folder(options.out)
    arguments = record_arguments(options, spec)
    check_record(folder, arguments)  # other arguments: refused before any work
    items = list_items(spec)
    # A model that cannot load, or a Ray that cannot start, is refused before the output
    # folder is made (when there is work to do: a finished run loads nothing).
    analyser = None
    done = _done_so_far(folder, options.retry_errors)
    if any(item.key not in done for item in items):
        if options.engine == "local":
            from .analyse import ImageAnalyser

            analyser = ImageAnalyser(request, state)
        else:
            from .ray_engine import check_reachable, import_ray

            import_ray()
            check_reachable(options.address)
    folder = ensure_folder(folder)
    lock = FileLock(str(folder / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(f"Another batch is writing into '{folder}': wait for it to finish, "
                        "or choose another --out folder.") from None
    try:
        return _run_locked(options, spec, items, folder, arguments,
                           progress or QuietProgress(), state, on_model, analyser)
    finally:
        lock.release()


def _done_so_far(folder: Path, retry_errors: bool = False) -> set[str]:
    if not folder.is_dir():
        return set()
    return finished_keys(Journal.open(folder, repair=False), retry_errors)


def finished_keys(journal: Journal, retry_errors: bool) -> set[str]:
    """The images not to do again: all with a line, or only the explained ones."""
    if retry_errors:
        return {e["key"] for e in journal.ok()}
    return journal.done()


def _run_locked(options: BatchOptions, spec: BatchInput, items: list[BatchItem],
                folder: Path, arguments: dict[str, Any], progress: BatchProgress,
                state: JobState | None, on_model: Callable[[Any], None] | None,
                analyser: Any = None) -> BatchReport:
    from .summary import load_dataset
    from .tables import write_tables

    record = check_record(folder, arguments) or {}
    extra = {k: v for k, v in record.items() if k not in ("format", "version", "arguments")}
    journal = Journal.open(folder)  # cuts a torn last line off
    writer = BatchWriter(folder, journal, arguments, extra)
    writer.write_record(engine=options.engine)  # first: no journal without a record
    shutil.rmtree(writer.partials, ignore_errors=True)  # a killed run's unfinished folders
    done = finished_keys(journal, options.retry_errors)
    pending = [item for item in items if item.key not in done]
    done_before = len(items) - len(pending)
    counts = {"ok": 0, "error": 0}
    started = [0.0]
    info: dict[str, Any] = {}

    def begin(model_info: dict[str, Any] | None) -> None:
        """Start the clock and the bar (the local engine: once its model is loaded; Ray:
        when its pipeline starts, its actors' loading included); record the model."""
        if model_info is not None:
            loaded(model_info)
        if not started[0]:
            started[0] = time.perf_counter()
            progress.start(len(pending), done_before)

    def loaded(model_info: dict[str, Any]) -> None:
        """What the model is (Ray: told by the first image's actor)."""
        info.update(model_info)
        writer.set_classes(model_info["classes"])
        if on_model is not None:
            on_model(model_info)

    def finished(entry: dict[str, Any]) -> None:
        counts["ok" if entry["status"] == "ok" else "error"] += 1
        progress.advance(entry["status"] == "ok")

    interrupted: BaseException | None = None
    try:
        if pending:
            if options.engine == "ray":
                from .ray_engine import run_ray

                run_ray(options, pending, writer, begin, loaded, finished, state)
            else:
                run_local(options, pending, writer, begin, finished, state, analyser)
    except (KeyboardInterrupt, Cancelled) as exc:
        interrupted = exc
    finally:
        if started[0]:
            progress.close()
    seconds = time.perf_counter() - started[0] if started[0] else 0.0
    written = write_tables(load_dataset(folder))  # also after an interruption
    if interrupted is not None:
        raise interrupted
    return BatchReport(folder, len(items), done_before, counts["ok"], counts["error"],
                       seconds, str(info.get("model", "")), bool(info.get("untrained")),
                       str(info.get("device", "")), tuple(written))


def model_info(model: Any) -> dict[str, Any]:
    from ..engine.devices import describe_device

    card = model.card
    code = (f"{card.factory[0].name}:{card.factory[1]}"
            if card is not None and card.runs_code and card.factory else None)
    return {"model": model.name, "weights": model.weights, "untrained": model.untrained,
            "device": describe_device(model.device), "classes": list(model.categories),
            "card": str(card.path) if card is not None else None, "card_code": code,
            "binary": model.binary, "outputs": model.outputs}


def run_local(options: BatchOptions, pending: list[BatchItem], writer: BatchWriter,
              begin: Callable[[dict[str, Any] | None], None],
              finished: Callable[[dict[str, Any]], None], state: JobState | None,
              analyser: Any = None) -> None:
    """One loaded model, a loop over images; the next ones decoded in a background thread."""
    from .analyse import ImageAnalyser

    if analyser is None:
        analyser = ImageAnalyser(options.request, state)
    begin(model_info(analyser.model))
    inner = _CancelOnly(state)
    for prepared in prefetched(pending, analyser.prepare, options.prefetch):
        check_cancelled(state)
        partial = writer.new_partial()
        outcome = analyser.explain(prepared, partial, inner)
        entry = outcome.journal_entry()
        writer.commit(entry, partial)
        finished(entry)
