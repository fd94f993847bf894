"""How a batch tells its progress: a bar on a terminal, plain lines in a log, a JobState
in the window; and the figures all three show (no Qt, no torch).

:class:`ProgressSnapshot` is what a batch has done so far: images done of how many, errors,
images/s and the time left. The rate is measured over the last images (at most
``RATE_WINDOW`` images or ``RATE_SECONDS`` seconds), so that it follows a batch whose speed
changes (another job on the machine, larger images) instead of averaging its whole past;
the ETA is the images left at that rate. Every progress class below keeps one
(``snapshot()``) and writes its line from it.

On a terminal, tqdm draws the bar (images done, images/s, ETA; errors so far in its
postfix). Elsewhere (a log file, a pipe, a cluster's job log), a plain line every
``LOG_INTERVAL_S`` seconds and at the end: carriage returns and redrawn bars would make
a log unreadable.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from ..engine.jobs import JobState

LOG_INTERVAL_S = 10.0
RATE_WINDOW = 50  # images: the rate is measured over at most this many recent images ...
RATE_SECONDS = 120.0  # ... finished in at most this many recent seconds


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


@dataclass(frozen=True)
class ProgressSnapshot:
    """A batch's progress at one moment, ready to show (the window's progress bar, the
    terminal's, a log line)."""

    done: int  # images finished by this run (explained or failed)
    total: int  # images this run has to do
    errors: int  # of ``done``, the images that could not be explained
    before: int  # images finished by earlier runs into the same folder
    elapsed_s: float  # since the run's first image was started
    images_per_second: float | None  # recent rate; None until one image is finished
    eta_s: float | None  # time left at that rate; None while unknown, 0.0 when done

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def rate_text(self) -> str:
        """'2.31 images/s', or '? images/s' before the first image."""
        rate = self.images_per_second
        return f"{rate:.2f} images/s" if rate is not None else "? images/s"

    def eta_text(self) -> str:
        """'ETA 3m05s', 'ETA 0s' when done, 'ETA ?' before the first image."""
        return f"ETA {duration(self.eta_s)}" if self.eta_s is not None else "ETA ?"

    def line(self) -> str:
        """'batch: 12/40 images, 1 error (+3 done before), 2.31 images/s, ETA 12s'."""
        errors = f", {self.errors} error{'s' if self.errors != 1 else ''}" if self.errors \
            else ""
        before = f" (+{self.before} done before)" if self.before else ""
        return (f"batch: {self.done}/{self.total} images{errors}{before}, "
                f"{self.rate_text()}, {self.eta_text()}")


class RateMeter:
    """Images per second over the recent finished images (a sliding window)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: int = RATE_WINDOW,
                 seconds: float = RATE_SECONDS) -> None:
        self.clock = clock
        self.window = window
        self.seconds = seconds
        self.started = clock()
        # finish times of the last images, and of the one before them (the window's start)
        self._times: deque[float] = deque(maxlen=window + 1)

    def restart(self) -> None:
        self.started = self.clock()
        self._times.clear()

    def tick(self) -> None:
        self._times.append(self.clock())

    def rate(self, now: float | None = None) -> float | None:
        """The last ``window`` images finished within ``seconds`` of ``now``, over the
        time since the image before them finished (or since the start); None before the
        first image, or when none finished recently."""
        now = self.clock() if now is None else now
        times = list(self._times)
        counted = [t for t in times[-self.window:] if now - t <= self.seconds]
        if not counted:
            return None
        first = len(times) - len(counted)
        since = times[first - 1] if first > 0 else self.started
        span = now - since
        return len(counted) / span if span > 0 else None


class _Counts:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = 0
        self.done = 0
        self.errors = 0
        self.before = 0
        self.meter = RateMeter(clock)

    @property
    def started(self) -> float:
        return self.meter.started

    def start(self, total: int, done_before: int) -> None:
        self.total, self.before = total, done_before
        self.meter.restart()

    def advance(self, ok: bool) -> None:
        self.done += 1
        self.errors += 0 if ok else 1
        self.meter.tick()

    def snapshot(self) -> ProgressSnapshot:
        now = self.meter.clock()
        left = self.total - self.done
        rate = self.meter.rate(now)
        if left <= 0:
            eta: float | None = 0.0
        elif rate:
            eta = left / rate
        else:
            eta = None
        return ProgressSnapshot(self.done, self.total, self.errors, self.before,
                                now - self.started, rate, eta)

    def rate(self) -> float:
        """The recent rate (0.0 before the first image)."""
        return self.snapshot().images_per_second or 0.0

    def line(self) -> str:
        return self.snapshot().line()


class LogProgress(_Counts):
    """Plain lines for logs: at most one every ``interval`` seconds, and the last one."""

    def __init__(self, stream: TextIO | None = None, interval: float = LOG_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.stream = stream
        self.interval = interval
        self._last = 0.0

    def _write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def start(self, total: int, done_before: int) -> None:
        super().start(total, done_before)
        self._last = self.meter.clock()
        self._write(f"batch: {total} images to explain"
                    + (f", {done_before} done before" if done_before else ""))

    def advance(self, ok: bool) -> None:
        super().advance(ok)
        now = self.meter.clock()
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
    """Progress for a JobState (the window's worker): one report per image, its message
    the snapshot's line (images/s and ETA included); ``snapshot()`` gives the figures."""

    def __init__(self, state: JobState, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
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
