"""How the document runs jobs: a small protocol, and a synchronous runner for tests.

A job is a plain function ``fn(state) -> result`` (Orange3's shape): it reports progress
and polls for cancellation through ``state`` (the engine's JobState), and may hand over a
partial answer (a preview) with ``state.partial(value)``. The window's runner
(:class:`segexplorer.gui.jobs.JobRunner`) runs jobs in QThreads; :class:`QueueRunner`
runs them on the caller's thread when asked, with the same rules:

* one job per channel: a new request cancels the one it replaces;
* a result, partial or final, reaches its callback only if its request is still the
  channel's latest and was not cancelled;
* a ``UserError`` becomes its one line, any other exception its first line and traceback.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from ...engine.errors import Cancelled, UserError


class JobContext(Protocol):
    """What a job sees: the engine's JobState, plus partial answers."""

    def set_progress(self, done: int, total: int, message: str = "") -> None: ...

    def is_cancelled(self) -> bool: ...

    def partial(self, value: object) -> None: ...


JobFn = Callable[[JobContext], object]
ResultFn = Callable[[object], object]
ErrorFn = Callable[[str, str], None]


class Runner(Protocol):
    """Starts, replaces and cancels jobs, one per channel (see the module's rules)."""

    def submit(self, channel: str, fn: JobFn, *, on_result: ResultFn | None = None,
               on_error: ErrorFn | None = None, on_cancelled: Callable[[], None] | None = None,
               on_partial: ResultFn | None = None, label: str = "", uses_model: bool = True,
               lends_model: bool = False, lock_key: Hashable = None) -> int: ...

    def cancel(self, channel: str) -> None: ...

    def cancel_all(self) -> None: ...

    def is_current(self, channel: str, request_id: int) -> bool: ...

    def is_busy(self, channel: str | None = None) -> bool: ...


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """(message, details) for a failed job: a UserError's line, or a bug's first line and
    traceback."""
    if isinstance(exc, UserError):
        return exc.message, ""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return (f"{type(exc).__name__}: {first}".rstrip(": "),
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


class _QueuedState:
    def __init__(self, runner: QueueRunner, job: _QueuedJob) -> None:
        self._runner = runner
        self._job = job
        self.cancel_requested = False

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        self._runner.progress.append((self._job.channel, done, total, message))

    def is_cancelled(self) -> bool:
        if self._runner.cancel_during is not None and self._runner.cancel_during(self._job):
            self.cancel_requested = True
        return self.cancel_requested

    def partial(self, value: object) -> None:
        job = self._job
        if not self.cancel_requested and self._runner.is_current(job.channel, job.request_id) \
                and job.on_partial is not None:
            job.on_partial(value)


@dataclass
class _QueuedJob:
    request_id: int
    channel: str
    fn: JobFn
    on_result: ResultFn | None
    on_error: ErrorFn | None
    on_cancelled: Callable[[], None] | None
    on_partial: ResultFn | None
    label: str
    uses_model: bool
    lends_model: bool
    state: _QueuedState | None = None


class QueueRunner:
    """Jobs wait in a queue until :meth:`run_next` or :meth:`run_until_idle` runs them,
    on the caller's thread. For tests of the document: no threads, no event loop."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._queue: list[_QueuedJob] = []
        self._latest: dict[str, int] = {}
        self.started_count = 0
        self.submitted: list[tuple[str, str]] = []  # (channel, label) of every request
        self.progress: list[tuple[str, int, int, str]] = []
        #: called before each cancellation check; returning True cancels the job there
        self.cancel_during: Callable[[_QueuedJob], bool] | None = None

    def submit(self, channel: str, fn: JobFn, *, on_result: ResultFn | None = None,
               on_error: ErrorFn | None = None, on_cancelled: Callable[[], None] | None = None,
               on_partial: ResultFn | None = None, label: str = "", uses_model: bool = True,
               lends_model: bool = False, lock_key: Hashable = None) -> int:
        rid = next(self._ids)
        for old in [j for j in self._queue if j.channel == channel]:
            self._drop(old)
        self._queue.append(_QueuedJob(rid, channel, fn, on_result, on_error, on_cancelled,
                                      on_partial, label or channel, uses_model, lends_model))
        self._latest[channel] = rid
        self.submitted.append((channel, label or channel))
        return rid

    def cancel(self, channel: str) -> None:
        self._latest.pop(channel, None)
        for job in [j for j in self._queue if j.channel == channel]:
            self._drop(job)

    def cancel_all(self) -> None:
        for channel in {j.channel for j in self._queue}:
            self.cancel(channel)

    def is_current(self, channel: str, request_id: int) -> bool:
        return self._latest.get(channel) == request_id

    def is_busy(self, channel: str | None = None) -> bool:
        return any(channel is None or j.channel == channel for j in self._queue)

    def pending(self) -> list[str]:
        """The channels of the queued jobs, in order."""
        return [j.channel for j in self._queue]

    def _drop(self, job: _QueuedJob) -> None:
        self._queue.remove(job)
        if job.on_cancelled is not None:
            job.on_cancelled()

    def run_next(self) -> bool:
        """Run the oldest queued job; False when there was none."""
        if not self._queue:
            return False
        job = self._queue.pop(0)
        self.started_count += 1
        state = _QueuedState(self, job)
        job.state = state
        try:
            result = job.fn(state)
        except Cancelled:
            if job.on_cancelled is not None:
                job.on_cancelled()
            return True
        except Exception as exc:  # noqa: BLE001 - reported like the window's runner does
            if self.is_current(job.channel, job.request_id) and not state.cancel_requested:
                self._latest.pop(job.channel, None)
                message, details = describe_failure(exc)
                if job.on_error is not None:
                    job.on_error(message, details)
            return True
        if state.cancel_requested or not self.is_current(job.channel, job.request_id):
            if job.on_cancelled is not None:
                job.on_cancelled()
            return True
        self._latest.pop(job.channel, None)
        if job.on_result is not None:
            job.on_result(result)
        return True

    def run_until_idle(self, limit: int = 1000) -> int:
        """Run jobs (including those they cause) until none is queued; how many ran."""
        count = 0
        while count < limit and self.run_next():
            count += 1
        return count
