"""The one writer of a batch folder: image folders, then journal lines (both engines).

Writer threads (``pipeline.WritePool``) call it at once: each image's files go into a
fresh folder of its own under ``.partial/`` (no lock needed), and :meth:`BatchWriter.commit`
(under a lock) renames that folder into ``images/<key>/`` and only then appends the
image's journal line. A kill at any moment leaves whole folders and whole lines, however
many threads were writing. A stop (Ctrl+C, the window's Stop) is asked under the same
lock: no image is committed once it was requested.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..export.atomic import write_bytes
from .record import Journal, write_record

PARTIAL = ".partial"
LOCK_FILE = ".lock"
IMAGES = "images"


def _never() -> bool:
    return False


class BatchWriter:
    """Image folders and journal lines of one batch folder; thread-safe."""

    def __init__(self, folder: Path, journal: Journal, arguments: dict[str, Any],
                 extra: dict[str, Any]) -> None:
        self.folder = folder
        self.journal = journal
        self.arguments = arguments
        self.extra = dict(extra)
        self.partials = folder / PARTIAL
        self._lock = threading.Lock()

    def write_record(self, **updates: Any) -> None:
        with self._lock:
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

    def write_files(self, partial: Path, files: Iterable[tuple[str, bytes]],
                    stop: Callable[[], bool] = _never) -> bool:
        """Each file as it comes (atomically: a kill leaves no half file either); False
        when ``stop()`` said to give up before the last."""
        for name, data in files:
            if stop():
                return False
            if "/" in name:  # a comparison's a/ and b/
                (partial / name).parent.mkdir(parents=True, exist_ok=True)
            write_bytes(partial / name, data)
        return True

    def commit(self, entry: dict[str, Any], partial: Path | None,
               stop: Callable[[], bool] = _never) -> bool:
        """Put the image's folder in place (if it was explained), then journal it; unless
        ``stop()``, asked under the lock, says the batch was stopped meanwhile (then the
        folder is dropped and False returned: no image is committed after a stop)."""
        with self._lock:
            if stop():
                if partial is not None:
                    shutil.rmtree(partial, ignore_errors=True)
                return False
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
            return True


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


def finished_keys(journal: Journal, retry_errors: bool) -> set[str]:
    """The images not to do again: all with a line, or only the explained ones."""
    if retry_errors:
        return {e["key"] for e in journal.ok()}
    return journal.done()
