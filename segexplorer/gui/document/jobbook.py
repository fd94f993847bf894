"""Which job each channel is running, and which ones failed or were cancelled.

A request for a channel is skipped when the same key is already on its way, or when it
failed or was cancelled with that very key (it waits for the user's Compute, which
forces it). The runner does the running; this book only remembers.

Cancelling has one path: a job cancelled while it was its channel's (:meth:`cancel`,
:meth:`cancel_all`, or from inside) is told to its owner (``on_cancelled``) once the
runner has stopped it (a worker finishes the chunk it is in first); a job replaced by a
newer request on its channel is simply forgotten.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from .runner import ErrorFn, JobFn, ResultFn, Runner


@dataclass(eq=False)
class Running:
    key: Hashable
    label: str
    request_id: int = 0
    cancelled: bool = False  # by cancel(): its owner hears of it when the runner has stopped it


class JobBook:
    """In flight and blocked requests per channel, over a :class:`Runner`."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._inflight: dict[str, Running] = {}
        self._blocked: dict[str, Hashable] = {}
        #: called with a channel whenever what it runs, or whether it is blocked, changes
        self.on_activity: Callable[[str], None] = lambda channel: None
        #: wraps each answer from the runner (the document announces its changes once)
        self.batch: Callable[[], AbstractContextManager[object]] = nullcontext

    # -- questions ---------------------------------------------------------------------
    def is_running(self, channel: str) -> bool:
        return channel in self._inflight

    def running_key(self, channel: str) -> Hashable | None:
        running = self._inflight.get(channel)
        return running.key if running is not None else None

    def request_id(self, channel: str) -> int | None:
        running = self._inflight.get(channel)
        return running.request_id if running is not None else None

    def is_blocked(self, channel: str) -> bool:
        return channel in self._blocked

    def blocked_key(self, channel: str) -> Hashable | None:
        return self._blocked.get(channel)

    def channels(self) -> list[str]:
        return list(self._inflight)

    def busy(self) -> bool:
        return bool(self._inflight) or self.runner.is_busy()

    # -- requests ----------------------------------------------------------------------
    def request(self, channel: str, key: Hashable, fn: JobFn, on_result: ResultFn,
                on_error: ErrorFn, on_cancelled: Callable[[], None], *, label: str,
                uses_model: bool = True, lends_model: bool = False, force: bool = False,
                on_partial: ResultFn | None = None, lock_key: Hashable = None) -> bool:
        """Submit unless the same key is on its way or blocked (``force`` retries it)."""
        current = self._inflight.get(channel)
        if current is not None and current.key == key \
                and self.runner.is_current(channel, current.request_id):
            return False  # already on its way
        if not force and self._blocked.get(channel) == key:
            return False  # failed or cancelled with these very choices: wait to be asked
        self._blocked.pop(channel, None)
        running = Running(key, label)
        self._inflight[channel] = running  # the job it replaces is forgotten, not blocked

        def result(value: object) -> None:
            with self.batch():
                if self._inflight.get(channel) is running:
                    self._inflight.pop(channel)
                    self.on_activity(channel)
                on_result(value)

        def error(message: str, details: str) -> None:
            with self.batch():
                if self._inflight.get(channel) is running:
                    self._inflight.pop(channel)
                    self._blocked[channel] = key
                    self.on_activity(channel)
                on_error(message, details)

        def cancelled() -> None:
            with self.batch():
                if self._inflight.get(channel) is running:  # cancelled from inside the job
                    self._inflight.pop(channel)
                    self._blocked[channel] = key
                    self.on_activity(channel)
                    on_cancelled()
                elif running.cancelled:  # by cancel(): now stopped
                    on_cancelled()

        running.request_id = self.runner.submit(
            channel, fn, on_result=result, on_error=error, on_cancelled=cancelled,
            on_partial=on_partial, label=label, uses_model=uses_model,
            lends_model=lends_model, lock_key=lock_key)
        self.on_activity(channel)
        return True

    def unblock(self, *channels: str) -> None:
        for channel in channels:
            if self._blocked.pop(channel, None) is not None:
                self.on_activity(channel)

    def cancel(self, channel: str, block: bool = False) -> bool:
        """Stop one channel's job (its result is dropped); True if one was in flight.
        ``block``: it waits for Compute, as a cancelled job does."""
        running = self._inflight.pop(channel, None)
        if running is None:
            return False
        running.cancelled = True
        if block:
            self._blocked[channel] = running.key
        self.runner.cancel(channel)
        self.on_activity(channel)
        return True

    def cancel_all(self) -> list[str]:
        """Cancel everything; each cancelled request waits for Compute. The channels."""
        cancelled = list(self._inflight)
        for channel in cancelled:
            self.cancel(channel, block=True)
        self.runner.cancel_all()
        return cancelled

    def forget(self, channels: Callable[[str], bool]) -> None:
        """Cancel and unblock the channels for which ``channels(name)`` is true."""
        for channel in [c for c in self._inflight if channels(c)]:
            self.cancel(channel)
        for channel in [c for c in self._blocked if channels(c)]:
            self._blocked.pop(channel)
            self.on_activity(channel)
