"""``segexplorer batch``: explain every image of a folder, a glob or a list, resumably.

The shape of a run (the same for both engines):

1. resolve the input and list its images (keys: relative paths); check the output folder
   and its run record (``run.json``: other arguments are refused in one line); take the
   folder's lock (one writer at a time);
2. read the journal (``journal.jsonl``; a torn last line is cut off), drop the leftovers
   of a killed run (``.partial/``), and keep the images without a journal line;
3. the engine explains them: locally, the pipeline of ``pipeline.py`` (a thread decodes
   the next images, the model explains one image after the other, writer threads render,
   encode and write the explained ones behind a bounded queue); on Ray, the same pipeline
   inside each actor of a pool (``ray_engine``);
4. this process alone writes (``writer.py``): each image's files go into a fresh folder
   under ``.partial/``, which is renamed into ``images/<key>/`` once complete; only then
   is the image's journal line appended (fsynced). A kill at any moment leaves whole
   folders and whole lines;
5. the dataset files (summary, errors, context matrix, leaning) are written from the
   journal, each atomically, at the end (also after Ctrl+C or a cancel).

Nothing here is a scheduler: the local engine is a loop feeding a thread pool, Ray's is
Ray Data's.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..engine.baselines import parse_baseline
from ..engine.cards import is_card_path
from ..engine.errors import Cancelled, UserError
from ..engine.jobs import JobState, check_cancelled
from ..engine.methods import parse_methods
from ..export.atomic import check_folder, ensure_folder
from ..export.outputs import output_parts
from .compare import check_pair_options, new_analyser, pair_arguments
from .inputs import BatchInput, BatchItem, list_items, resolve_input
from .options import ENGINES, BatchOptions, BatchReport
from .pipeline import CancelOnly, WritePool, groups, prefetched
from .progress import BatchProgress, QuietProgress
from .record import Journal, check_record
from .writer import LOCK_FILE, BatchWriter, finished_keys

__all__ = ["BatchOptions", "BatchReport", "record_arguments", "run_batch", "run_local"]


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
        "outputs": options.outputs,
        **pair_arguments(options),
    }


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
    output_parts(options.outputs)
    check_pair_options(options)
    if options.writers is not None and options.writers < 1:
        raise UserError(f"--writers {options.writers}: use at least 1.")
    if options.images_per_pass is not None and options.images_per_pass < 1:
        raise UserError(f"--images-per-pass {options.images_per_pass}: use at least 1.")
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
            analyser = new_analyser(options, state)
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
    return finished_keys(Journal.open(folder, repair=False, slim=True), retry_errors)


def _run_locked(options: BatchOptions, spec: BatchInput, items: list[BatchItem],
                folder: Path, arguments: dict[str, Any], progress: BatchProgress,
                state: JobState | None, on_model: Callable[[Any], None] | None,
                analyser: Any = None) -> BatchReport:
    from .summary import load_dataset
    from .tables import write_tables

    record = check_record(folder, arguments) or {}
    extra = {k: v for k, v in record.items() if k not in ("format", "version", "arguments")}
    journal = Journal.open(folder, slim=True)  # cuts a torn last line off
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


def run_local(options: BatchOptions, pending: list[BatchItem], writer: BatchWriter,
              begin: Callable[[dict[str, Any] | None], None],
              finished: Callable[[dict[str, Any]], None], state: JobState | None,
              analyser: Any = None) -> None:
    """One loaded model explaining one image after the other, fed by a decoding thread,
    feeding the writer threads (``pipeline.py``)."""
    from .analyse import Analysed, model_info

    if analyser is None:
        analyser = new_analyser(options, state)
    begin(model_info(analyser.model))
    inner = CancelOnly(state)

    def stopped() -> bool:
        return pool.stopping.is_set() or inner.is_cancelled()

    def write(analysed: Analysed) -> dict[str, Any] | None:
        """A writer thread: the image's files into a fresh folder, then the commit; None
        when the batch was stopped meanwhile (nothing committed)."""
        entry = analysed.outcome.journal_entry()
        partial = writer.new_partial() if analysed.ok else None
        if partial is not None and not writer.write_files(partial, analyser.files(analysed),
                                                          stopped):
            shutil.rmtree(partial, ignore_errors=True)
            return None
        return entry if writer.commit(entry, partial, stopped) else None

    def done(entry: dict[str, Any] | None) -> None:
        if entry is not None:
            finished(entry)

    most = analyser.images_per_pass
    with WritePool(write, done, options.writer_count()) as pool:
        decoded = prefetched(pending, analyser.prepare, max(options.prefetch, most))
        for group in groups(decoded, most):
            check_cancelled(state)
            for analysed in analyser.analyse_group(group, inner):
                pool.submit(analysed)
    check_cancelled(state)  # a stop while the last images were written is still a stop
