"""Atomic file writes: a temporary file beside the target, renamed only when complete.

A failure (a full disk, a read-only folder, an exception in the writer) leaves no
partial file and never damages an existing file of the same name.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..engine.errors import UserError


def ensure_folder(folder: str | Path, create: bool = True) -> Path:
    """``folder`` as a Path, created if asked; a clear UserError when that is impossible."""
    path = Path(folder).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"'{path}' is a file, not a folder: choose a folder to export into.")
    if not path.exists():
        if not create:
            raise UserError(f"Folder '{path}' does not exist: create it or choose another.")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(_os_message(path, exc)) from None
    return path


def _os_message(path: Path, exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot write '{path}': permission denied (read-only folder?). Choose another folder."
    if exc.errno == errno.ENOSPC:
        return f"Cannot write '{path}': the disk is full. Free some space or choose another disk."
    if exc.errno == errno.ENOENT:
        return f"Cannot write '{path}': its folder does not exist. Choose an existing folder."
    return f"Cannot write '{path}': {exc.strerror or exc}."


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file, then rename it to ``path``."""
    target = Path(path).expanduser()
    folder = target.parent
    if not folder.is_dir():
        raise UserError(f"Cannot write '{target}': folder '{folder}' does not exist. "
                        "Choose an existing folder.")
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
        tmp_name = None
    except OSError as exc:
        raise UserError(_os_message(target, exc)) from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    return target


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))
