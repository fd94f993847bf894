"""The batch's pipeline: the model never waits for decoding, rendering, encoding or disk.

::

    prefetch thread          model (the caller's thread)        writer threads (WritePool)
    decode + resize  --4-->  explain image i+1           --->   render, encode, write image i
                             (one function per image)  bounded   and commit it (folder, then
                                                                 journal line)

* :func:`prefetched` decodes and preprocesses the next images in one background thread.
* The caller runs the model on :func:`groups` of consecutive images
  (``ImageAnalyser.analyse_group``: those of one shape share the prediction's pass and
  Grad-CAM's, as many as ``images_per_pass`` and the memory budget allow; one image at a
  time on a CPU unless asked), then hands each image on.
* :class:`WritePool` hands each explained image to a small pool of threads, behind a
  bounded number of images in flight: when the writers fall behind, the model waits for
  one of them, so memory stays flat however many images there are. Rendering (numpy),
  PNG and NPZ encoding (zlib) and writing release the GIL; threads were measured against
  processes before this was chosen (docs/scale.md, "Threads or processes").

Completion order may differ from input order (a small image is written before a large
one): the journal records images as they are committed, and everything read from it (the
tables, what a resumed run skips) is independent of that order.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Generic, TypeVar

from ..engine.jobs import JobState

T = TypeVar("T")
R = TypeVar("R")


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


def groups(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive items, ``size`` at a time (the last group may be smaller)."""
    source = iter(items)
    while group := list(itertools.islice(source, max(1, size))):
        yield group


class WritePool(Generic[T, R]):
    """``work(item)`` in ``workers`` threads, at most ``depth`` items in flight.

    ``submit`` returns at once while fewer than ``depth`` items are in flight, else waits
    for one to finish. ``on_done(result)`` is called on the submitting thread (so the
    progress bar and the window's job see one thread), in completion order, from
    ``submit`` and ``finish``. A worker's exception is raised there too. Leaving the
    ``with`` block waits for the items in flight; after an exception (Ctrl+C, a cancel, a
    worker's error) it first sets :attr:`stopping`, which ``work`` reads to abandon what
    it has not finished (the batch's writers then commit nothing more: a stop is a stop,
    as before the pipeline). The first exception wins.
    """

    def __init__(self, work: Callable[[T], R], on_done: Callable[[R], None], workers: int,
                 depth: int | None = None) -> None:
        if workers < 1:
            raise ValueError("a WritePool needs at least one worker")
        self._work = work
        self._on_done = on_done
        self.workers = workers
        self.depth = depth if depth is not None else workers + 1
        self._pool = ThreadPoolExecutor(max_workers=workers,
                                        thread_name_prefix="segexplorer-writer")
        self._in_flight: dict[Future[R], int] = {}
        self._order = itertools.count()
        #: set when the pool is left by an exception: work in flight should give up
        self.stopping = threading.Event()

    def __enter__(self) -> WritePool[T, R]:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            if error is None:
                self.finish()
            else:
                self.stopping.set()
                self._finish_quietly()
        finally:
            self._pool.shutdown(wait=True)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def submit(self, item: T) -> None:
        self._collect(block=False)
        while len(self._in_flight) >= self.depth:
            self._collect(block=True)
        self._in_flight[self._pool.submit(self._work, item)] = next(self._order)

    def finish(self) -> None:
        """Wait for every item in flight."""
        while self._in_flight:
            self._collect(block=True)

    def _collect(self, block: bool) -> None:
        if not self._in_flight:
            return
        done, _ = wait(list(self._in_flight), timeout=None if block else 0,
                       return_when=FIRST_COMPLETED)
        for future in sorted(done, key=self._in_flight.__getitem__):
            del self._in_flight[future]
            try:
                result = future.result()
            except BaseException:
                self.stopping.set()  # the others give up too (a full disk stays full)
                raise
            self._on_done(result)

    def _finish_quietly(self) -> None:
        """Finish what is in flight while another exception is on its way out."""
        while self._in_flight:
            try:
                self._collect(block=True)
            except Exception:  # noqa: BLE001, S112 - the first exception is the one raised
                continue


class CancelOnly:
    """A JobState that only passes cancellation through (an image's own progress would
    fight the batch's bar)."""

    def __init__(self, state: JobState | None) -> None:
        self._state = state

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        pass

    def is_cancelled(self) -> bool:
        return self._state is not None and self._state.is_cancelled()
