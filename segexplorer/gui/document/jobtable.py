"""The one route of every job: a request value -> the job its owner builds -> the job book.

Whoever owns a kind of request registers it once (:meth:`JobTable.register`): how it
becomes a :class:`Job` (a plain function ``fn(state)``, its label, whether it uses the
model) and what its result does. Requests come from the planner (what the choices need)
or, for one-off writes (exports, a saved session), from their owner directly; either way
they run here, so cancelling is one path (:meth:`cancel`, :meth:`cancel_all`: the request
waits for Compute), failures are one event (``failed``), and every change of what runs
is announced (``changed``: ``jobs.<channel>``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .events import Change, Event, Updates
from .jobbook import JobBook
from .messages import Failure, window_wording
from .requests import Request
from .runner import JobFn, ResultFn

R = TypeVar("R")


@dataclass(frozen=True)
class Job:
    """What a request runs: ``fn(state)`` in a worker, and how."""

    fn: JobFn
    label: str
    uses_model: bool = True
    lends_model: bool = False  # a long job lets a waiting model job run between chunks
    on_partial: ResultFn | None = None
    lock_key: Hashable = None  # the model it uses (jobs of one model run one at a time)


@dataclass(frozen=True)
class _Entry(Generic[R]):
    build: Callable[[R], Job]
    done: Callable[[R, Any], object] | None
    failed: Callable[[R, str, str], bool] | None  # True: handled (no failure event)
    cancelled: Callable[[R], object] | None
    started: Callable[[R], object] | None


class JobTable:
    """Registered kinds of request, started over one job book."""

    def __init__(self, book: JobBook, updates: Updates,
                 lock_key: Callable[[], Hashable] = lambda: None) -> None:
        self.book = book
        self.updates = updates
        self.lock_key = lock_key  # the loaded model's key (the model lock)
        self._entries: dict[type, _Entry[Any]] = {}
        self.changed: Event[Change] = Event()
        self.failed: Event[Failure] = Event()
        self.after_result: list[Callable[[], object]] = []  # e.g. plan again
        book.on_activity = lambda channel: self.changed.emit(
            Change("jobs", frozenset({channel})))
        book.batch = updates.batch

    def register(self, kind: type[R], build: Callable[[R], Job],
                 done: Callable[[R, Any], object] | None = None,
                 failed: Callable[[R, str, str], bool] | None = None,
                 cancelled: Callable[[R], object] | None = None,
                 started: Callable[[R], object] | None = None) -> None:
        self._entries[kind] = _Entry(build, done, failed, cancelled, started)

    def kinds(self) -> set[type]:
        return set(self._entries)

    # -- starting ------------------------------------------------------------------------
    def start(self, request: Request, force: bool = False) -> bool:
        """Run ``request`` unless it is on its way or waits for Compute (``force``)."""
        entry = self._entries[type(request)]
        channel, key = request.channel, request.key
        if not force and self.book.blocked_key(channel) == key:
            return False  # (the book checks too; this spares building the job)
        job = entry.build(request)
        lock = job.lock_key if job.lock_key is not None else (
            self.lock_key() if job.uses_model else None)
        started = self.book.request(
            channel, key, job.fn, lambda value: self._done(entry, request, value),
            lambda message, details: self._failed(entry, request, message, details),
            lambda: self._cancelled(entry, request), label=job.label,
            uses_model=job.uses_model, lends_model=job.lends_model, force=force,
            on_partial=self._partial(job.on_partial), lock_key=lock)
        if started and entry.started is not None:
            entry.started(request)
        return started

    def _partial(self, on_partial: ResultFn | None) -> ResultFn | None:
        if on_partial is None:
            return None

        def partial(value: object) -> None:
            with self.updates.batch():
                on_partial(value)

        return partial

    def _done(self, entry: _Entry[Any], request: Any, value: object) -> None:
        with self.updates.batch():
            if entry.done is not None:
                entry.done(request, value)
            for after in list(self.after_result):
                after()

    def _failed(self, entry: _Entry[Any], request: Any, message: str, details: str) -> None:
        with self.updates.batch():
            message = window_wording(message)
            if entry.failed is None or not entry.failed(request, message, details):
                self.failed.emit(Failure(request.channel, message, details))

    def _cancelled(self, entry: _Entry[Any], request: Any) -> None:
        with self.updates.batch():
            if entry.cancelled is not None:
                entry.cancelled(request)

    # -- the one cancellation path ------------------------------------------------------
    def cancel(self, channel: str, block: bool = False) -> bool:
        """Stop ``channel``'s job (its result is dropped); its owner hears of it (the
        ``cancelled`` it registered) once the runner has stopped it. ``block``: it then
        waits for Compute (Run), as a job cancelled by Cancel does."""
        with self.updates.batch():
            return self.book.cancel(channel, block)

    def cancel_all(self) -> list[str]:
        """Cancel every job; each waits for Compute. The channels that were running."""
        with self.updates.batch():
            return self.book.cancel_all()

    # -- questions -----------------------------------------------------------------------
    def is_running(self, channel: str) -> bool:
        return self.book.is_running(channel)

    def is_blocked(self, channel: str) -> bool:
        return self.book.is_blocked(channel)

    def busy(self) -> bool:
        return self.book.busy()

    def request_id(self, channel: str) -> int | None:
        return self.book.request_id(channel)

    def unblock(self, *channels: str) -> None:
        self.book.unblock(*channels)

    def forget(self, channels: Callable[[str], bool]) -> None:
        self.book.forget(channels)
