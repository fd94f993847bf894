"""The tiny contract between long engine computations and whoever runs them.

Engine functions take a ``state`` object (Orange3's pattern): they report progress
through it and poll it for cancellation between chunks of work. The GUI passes a
state backed by its worker thread; the CLI passes :class:`ConsoleState` or none.
"""

from __future__ import annotations

from typing import Protocol

from .errors import Cancelled


class JobState(Protocol):
    def set_progress(self, done: int, total: int, message: str = "") -> None: ...

    def is_cancelled(self) -> bool: ...


class NullState:
    """Reports nowhere and never cancels."""

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        pass

    def is_cancelled(self) -> bool:
        return False


def check_cancelled(state: JobState | None) -> None:
    """Raise :class:`Cancelled` if the job's owner asked it to stop."""
    if state is not None and state.is_cancelled():
        raise Cancelled()


def report(state: JobState | None, done: int, total: int, message: str = "") -> None:
    if state is not None:
        state.set_progress(done, total, message)
