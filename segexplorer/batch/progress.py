"""How a batch tells its progress: a bar on a terminal, plain lines in a log, a JobState
in the window.

On a terminal, tqdm draws the bar (images done, images/s, ETA; errors so far in its
postfix). Elsewhere (a log file, a pipe, a cluster's job log), a plain line every
``LOG_INTERVAL_S`` seconds and at the end: carriage returns and redrawn bars would make
a log unreadable.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

from ..engine.jobs import JobState

LOG_INTERVAL_S = 10.0


class BatchProgress(Protocol):
    def start(self, total: int, done_before: int) -> None: ...

    def advance(self, ok: bool) -> None: ...

    def close(self) -> None: ...


def duration(seconds: float) -> str:
    """'42s', '3m05s', '2h07m'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class _Counts:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.errors = 0
        self.before = 0
        self.started = time.monotonic()

    def start(self, total: int, done_before: int) -> None:
        self.total, self.before = total, done_before
        self.started = time.monotonic()

    def advance(self, ok: bool) -> None:
        self.done += 1
        self.errors += 0 if ok else 1

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        left = self.total - self.done
        eta = duration(left / rate) if rate > 0 and left else ("0s" if not left else "?")
        errors = f", {self.errors} error{'s' if self.errors != 1 else ''}" if self.errors else ""
        before = f" (+{self.before} done before)" if self.before else ""
        return (f"batch: {self.done}/{self.total} images{errors}{before}, "
                f"{rate:.2f} images/s, ETA {eta}")


class LogProgress(_Counts):
    """Plain lines for logs: at most one every ``interval`` seconds, and the last one."""

    def __init__(self, stream: TextIO | None = None, interval: float = LOG_INTERVAL_S) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self._last = 0.0

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def start(self, total: int, done_before: int) -> None:
        super().start(total, done_before)
        self._last = time.monotonic()
        self._write(f"batch: {total} images to explain"
                    + (f", {done_before} done before" if done_before else ""))

    def advance(self, ok: bool) -> None:
        super().advance(ok)
        now = time.monotonic()
        if now - self._last >= self.interval and self.done < self.total:
            self._last = now
            self._write(self.line())

    def close(self) -> None:
        self._write(self.line())


class TerminalProgress(_Counts):
    """tqdm's bar on the terminal: count, rate, ETA, errors."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream
        self._bar: Any = None

    def start(self, total: int, done_before: int) -> None:
        from tqdm import tqdm

        super().start(total, done_before)
        self._bar = tqdm(total=total, unit="img", desc="batch", file=self.stream or sys.stderr,
                         dynamic_ncols=True, smoothing=0.1, mininterval=0.2)
        if done_before:
            self._bar.write(f"batch: {done_before} images done before, {total} to go",
                            file=self.stream or sys.stderr)

    def advance(self, ok: bool) -> None:
        super().advance(ok)
        if self._bar is not None:
            if not ok:
                self._bar.set_postfix_str(f"{self.errors} error{'s' if self.errors > 1 else ''}",
                                          refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class QuietProgress(_Counts):
    def close(self) -> None:
        pass


class StateProgress(_Counts):
    """Progress for a JobState (the window's worker): one report per image."""

    def __init__(self, state: JobState) -> None:
        super().__init__()
        self.state = state

    def start(self, total: int, done_before: int) -> None:
        super().start(total, done_before)
        self.state.set_progress(0, total, self.line())

    def advance(self, ok: bool) -> None:
        super().advance(ok)
        self.state.set_progress(self.done, self.total, self.line())

    def close(self) -> None:
        pass


def console_progress(quiet: bool, stream: TextIO | None = None) -> BatchProgress:
    """The bar on a terminal, plain lines otherwise, nothing when quiet."""
    if quiet:
        return QuietProgress()
    target = stream or sys.stderr
    try:
        tty = target.isatty()
    except (AttributeError, ValueError):
        tty = False
    return TerminalProgress(stream) if tty else LogProgress(stream)
