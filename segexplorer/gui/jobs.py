"""Background jobs for the window: QThread workers, one active job per channel.

The shape follows Orange3's ``concurrent`` helpers and napari's layer slicer:

* A job is a plain function ``fn(state) -> result`` run in its own ``QThread``
  (a worker ``QObject`` moved to the thread). ``state`` is the engine's
  :class:`~segexplorer.engine.jobs.JobState`: the engine reports progress through it
  and polls it for cancellation between chunks (never ``QThread.terminate``).
* Each request gets an id. A channel ("predict", "gradcam", "sweep", ...) has at most
  one running job; a new request cancels the running one and waits as the channel's
  *pending* job (a newer request replaces an older pending one, which never runs).
  So 50 rapid requests start at most two threads and only the last one's result is
  delivered.
* A result reaches its callback only if its request is still the channel's latest and
  was not cancelled: a stale answer can never reach the screen. So does a partial
  answer (a preview), which a job hands over with ``state.partial(value)``.
* The window's document talks to it through a small protocol
  (:class:`segexplorer.gui.document.runner.Runner`); tests of the document use a
  synchronous runner instead.
* Model work is serialised by a :class:`ModelLock` per model (a session and its layer
  hooks are not thread-safe); a job for another model takes another lock, so a new
  model never waits for the pass an abandoned model's job is finishing. A long job (the ablation sweep) lends the lock out between chunks,
  so a Grad-CAM asked for during a sweep runs at once instead of after it.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from ..engine.errors import Cancelled, UserError

PROGRESS_INTERVAL_S = 0.08  # at most ~12 progress updates a second reach the GUI


class WorkerState:
    """The engine's JobState, backed by a worker thread (thread-safe)."""

    def __init__(self, request_id: int, channel: str) -> None:
        self.request_id = request_id
        self.channel = channel
        self._cancel = threading.Event()
        self._report: Callable[[int, int, str], None] | None = None
        self._partial: Callable[[object], None] | None = None
        self._yield_hook: Callable[[], None] | None = None
        self._last_emit = 0.0

    # -- owner side (main thread) ---------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    # -- JobState protocol (worker thread) -----------------------------------------------
    def is_cancelled(self) -> bool:
        if self._cancel.is_set():
            return True
        if self._yield_hook is not None:
            self._yield_hook()  # may block while a waiting job borrows the model
        return self._cancel.is_set()

    def partial(self, value: object) -> None:
        """Hand a partial answer (a preview) to the main thread, unless cancelled."""
        if self._partial is not None and not self._cancel.is_set():
            self._partial(value)

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        now = time.monotonic()
        final = total > 0 and done >= total
        if self._report is None or not (final or done == 0
                                         or now - self._last_emit >= PROGRESS_INTERVAL_S):
            return
        self._last_emit = now
        self._report(int(done), int(total), str(message))


class ModelLock:
    """Serialises model work; a lending job hands it to waiting jobs between chunks."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: WorkerState | None = None
        self._waiting = 0

    def acquire(self, state: WorkerState) -> bool:
        """Wait for the lock; False if ``state`` was cancelled while waiting."""
        with self._cond:
            self._waiting += 1
            try:
                while self._owner is not None:
                    if state.cancel_requested:
                        return False
                    self._cond.wait(0.05)
                self._owner = state
                return True
            finally:
                self._waiting -= 1

    def release(self, state: WorkerState) -> None:
        with self._cond:
            if self._owner is state:
                self._owner = None
                self._cond.notify_all()

    def lend(self, state: WorkerState) -> None:
        """Called by the owner between chunks: let every waiting job run, then resume."""
        with self._cond:
            if self._owner is not state or self._waiting == 0:
                return
            self._owner = None
            self._cond.notify_all()
            # Waiters take the lock inside acquire()'s critical section, so "nobody
            # waiting and nobody owning" means they have all run.
            while self._owner is not None or self._waiting > 0:
                if state.cancel_requested:
                    return  # the engine raises Cancelled next; nothing to release
                self._cond.wait(0.05)
            self._owner = state

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._owner is not None


@dataclass
class Job:
    request_id: int
    channel: str
    fn: Callable[[Any], object]
    on_result: Callable[[object], object] | None
    on_error: Callable[[str, str], None] | None
    on_cancelled: Callable[[], None] | None
    on_partial: Callable[[object], object] | None
    label: str
    uses_model: bool
    lends_model: bool
    state: WorkerState
    lock_key: Hashable = None
    submitted: float = field(default_factory=time.monotonic)


class _Worker(QObject):
    """Runs one job in its thread and reports back through queued signals."""

    progress = Signal(int, int, int, str)
    partial = Signal(int, object)
    succeeded = Signal(int, object)
    failed = Signal(int, str, str)
    cancelled = Signal(int)

    def __init__(self, job: Job, lock: ModelLock, num_threads: int | None) -> None:
        super().__init__()
        self._job = job
        self._lock = lock
        self._num_threads = num_threads

    @Slot()
    def run(self) -> None:
        job, state = self._job, self._job.state
        rid = job.request_id
        state._report = lambda done, total, msg: self.progress.emit(rid, done, total, msg)
        state._partial = lambda value: self.partial.emit(rid, value)
        try:
            if self._num_threads:
                import torch  # noqa: PLC0415 - torch's thread count is per thread

                torch.set_num_threads(self._num_threads)
            if job.uses_model and not self._lock.acquire(state):
                raise Cancelled()
            try:
                if job.uses_model and job.lends_model:
                    state._yield_hook = lambda: self._lock.lend(state)
                if state.cancel_requested:
                    raise Cancelled()
                result = job.fn(state)
            finally:
                state._yield_hook = None
                if job.uses_model:
                    self._lock.release(state)
            if state.cancel_requested:
                self.cancelled.emit(rid)  # a cancelled job never delivers its result
            else:
                self.succeeded.emit(rid, result)
        except Cancelled:
            self.cancelled.emit(rid)
        except UserError as exc:
            self.failed.emit(rid, exc.message, "")
        except Exception as exc:  # a bug: shown to the user with its traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.failed.emit(rid, f"{type(exc).__name__}: {first}".rstrip(": "),
                             traceback.format_exc())
        finally:
            state._report = None
            state._partial = None
            # Hand the worker back to the main thread, where it will be deleted, and
            # end this thread's event loop (quit() is thread-safe).
            app = QCoreApplication.instance()
            if app is not None:
                self.moveToThread(app.thread())
            QThread.currentThread().quit()


@dataclass
class _Running:
    job: Job
    thread: QThread
    worker: _Worker


class JobRunner(QObject):
    """Starts, cancels and receives jobs; the window only talks to this."""

    #: channel, done, total, message: the latest progress of a running job
    progress = Signal(str, int, int, str)
    #: emitted whenever the set of running / pending jobs changes
    activity_changed = Signal()
    #: channel, message, details: a failure that has no on_error callback
    failed = Signal(str, str, str)

    def __init__(self, parent: QObject | None = None, num_threads: int | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._latest: dict[str, int] = {}
        self._running: dict[str, _Running] = {}
        self._pending: dict[str, Job] = {}
        self._jobs: dict[int, Job] = {}
        self.lock = ModelLock()  # for jobs that name no model
        self._locks: dict[Hashable, ModelLock] = {}
        self._num_threads = num_threads
        self._shut_down = False
        self.started_count = 0  # threads started so far (tests use it)

    def set_num_threads(self, num_threads: int | None) -> None:
        """Torch's thread count for jobs started from now on (None: leave it alone)."""
        self._num_threads = num_threads

    # -- requests ---------------------------------------------------------------------
    def submit(
        self,
        channel: str,
        fn: Callable[[Any], object],
        *,
        on_result: Callable[[object], object] | None = None,
        on_error: Callable[[str, str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
        on_partial: Callable[[object], object] | None = None,
        label: str = "",
        uses_model: bool = True,
        lends_model: bool = False,
        lock_key: Hashable = None,
    ) -> int:
        """Run ``fn(state)`` in a worker; cancel whatever ``channel`` was doing.

        ``lock_key`` names the model the job uses: jobs of one model run one at a time."""
        if self._shut_down:
            return 0
        rid = next(self._ids)
        job = Job(rid, channel, fn, on_result, on_error, on_cancelled, on_partial,
                  label or channel, uses_model, lends_model, WorkerState(rid, channel),
                  lock_key)
        self._jobs[rid] = job
        self._latest[channel] = rid
        replaced = self._pending.pop(channel, None)
        if replaced is not None:
            self._forget(replaced.request_id)
        running = self._running.get(channel)
        if running is not None:
            running.job.state.cancel()
            self._pending[channel] = job  # starts when the cancelled one has wound down
        else:
            self._start(job)
        self.activity_changed.emit()
        return rid

    def cancel(self, channel: str) -> None:
        """Stop ``channel``'s running and pending jobs (cooperatively)."""
        self._latest.pop(channel, None)
        pending = self._pending.pop(channel, None)
        if pending is not None:
            self._forget(pending.request_id)
        running = self._running.get(channel)
        if running is not None:
            running.job.state.cancel()
        self.activity_changed.emit()

    def cancel_all(self) -> None:
        for channel in set(self._running) | set(self._pending):
            self.cancel(channel)

    def is_current(self, channel: str, request_id: int) -> bool:
        return self._latest.get(channel) == request_id

    # -- introspection ------------------------------------------------------------------
    def is_busy(self, channel: str | None = None) -> bool:
        if channel is None:
            return bool(self._running or self._pending)
        return channel in self._running or channel in self._pending

    def active_channels(self) -> list[str]:
        live = [c for c, r in self._running.items() if not r.job.state.cancel_requested]
        return live + [c for c in self._pending if c not in live]

    def live_thread_count(self) -> int:
        """Worker threads that exist right now (0 when idle)."""
        return len(self._running)

    def wait_idle(self, timeout_s: float) -> bool:
        """Block (processing events) until no job runs; False on timeout."""
        from PySide6.QtCore import QDeadlineTimer, QEventLoop

        deadline = time.monotonic() + timeout_s
        while self._running or self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for running in list(self._running.values()):
                running.thread.wait(QDeadlineTimer(int(min(remaining, 0.02) * 1000)))
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            self._on_thread_finished()  # in case the finished signal is still queued
        return True

    def shutdown(self, timeout_s: float = 1.5) -> bool:
        """Cancel everything, start nothing new, wait up to ``timeout_s`` for threads."""
        self._shut_down = True
        for job in self._pending.values():
            self._forget(job.request_id)
        self._pending.clear()
        self._latest.clear()
        for running in self._running.values():
            running.job.state.cancel()
        return self.wait_idle(timeout_s)

    # -- internals ----------------------------------------------------------------------
    def _start(self, job: Job) -> None:
        thread = QThread()
        thread.setObjectName(f"segexplorer-{job.channel}-{job.request_id}")
        if job.lock_key is None:
            lock = self.lock
        else:
            lock = self._locks.setdefault(job.lock_key, ModelLock())
            if len(self._locks) > 8:  # locks of models long gone (idle ones only)
                for key in [k for k, v in self._locks.items() if not v.busy
                            and k != job.lock_key][:len(self._locks) - 8]:
                    del self._locks[key]
        worker = _Worker(job, lock, self._num_threads)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.progress.connect(self._on_progress)
        worker.partial.connect(self._on_partial)
        worker.succeeded.connect(self._on_succeeded)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        thread.finished.connect(self._on_thread_finished)
        self._running[job.channel] = _Running(job, thread, worker)
        self.started_count += 1
        thread.start()

    def _forget(self, request_id: int) -> None:
        job = self._jobs.pop(request_id, None)
        if job is not None and job.on_cancelled is not None and not self._shut_down:
            job.on_cancelled()

    def _deliverable(self, request_id: int, final: bool = True) -> Job | None:
        # Each started job sends exactly one final signal (result, failure or
        # cancellation): that is when the runner forgets it.
        job = self._jobs.pop(request_id, None) if final else self._jobs.get(request_id)
        if job is None or job.state.cancel_requested:
            return None
        if self._latest.get(job.channel) != request_id:
            return None
        return job

    @Slot(int, int, int, str)
    def _on_progress(self, request_id: int, done: int, total: int, message: str) -> None:
        job = self._deliverable(request_id, final=False)
        if job is not None:
            self.progress.emit(job.channel, done, total, message or job.label)

    @Slot(int, object)
    def _on_partial(self, request_id: int, value: object) -> None:
        job = self._deliverable(request_id, final=False)
        if job is not None and job.on_partial is not None:
            job.on_partial(value)

    @Slot(int, object)
    def _on_succeeded(self, request_id: int, result: object) -> None:
        job = self._deliverable(request_id)
        if job is None:
            return
        self._latest.pop(job.channel, None)  # answered: nothing of this channel is current
        if job.on_result is not None:
            job.on_result(result)

    @Slot(int, str, str)
    def _on_failed(self, request_id: int, message: str, details: str) -> None:
        job = self._deliverable(request_id)
        if job is None:
            return
        self._latest.pop(job.channel, None)
        if job.on_error is not None:
            job.on_error(message, details)
        else:
            self.failed.emit(job.channel, message, details)

    @Slot(int)
    def _on_cancelled(self, request_id: int) -> None:
        job = self._jobs.pop(request_id, None)
        if job is not None and job.on_cancelled is not None and not self._shut_down:
            job.on_cancelled()

    @Slot()
    def _on_thread_finished(self) -> None:
        # A slot of this main-thread object (not a lambda) so it runs in the main thread.
        ended = [c for c, r in self._running.items() if r.thread.isFinished()]
        for channel in ended:
            running = self._running.pop(channel)
            running.thread.wait()  # returns at once: the thread has finished
            pending = self._pending.pop(channel, None)
            if pending is not None and not self._shut_down:
                self._start(pending)
        if ended:
            self.activity_changed.emit()
