"""Atomic file writes: a temporary file beside the target, renamed only when complete.

A failure (a full disk, a read-only folder, an exception in the writer) leaves no
partial file and never damages an existing file of the same name. A new file gets the
permissions any new file would get (0666 less the umask), a replaced one keeps its own:
``mkstemp``'s private 0600 never reaches the result.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from ..engine.errors import UserError


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:  # Linux: no race
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore, once, at import
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~current_umask()


def ensure_folder(folder: str | Path, create: bool = True) -> Path:
    """``folder`` as a Path, created if asked; a clear UserError when that is impossible."""
    path = Path(folder).expanduser()
    try:
        exists = path.exists()
        if exists and not path.is_dir():
            raise UserError(f"'{path}' is a file, not a folder: choose a folder to export into.")
    except OSError as exc:  # a name too long, a link loop ...
        raise UserError(os_message(path, exc)) from None
    if not exists:
        if not create:
            raise UserError(f"Folder '{path}' does not exist: create it or choose another.")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(os_message(path, exc)) from None
    return path


def check_folder(folder: str | Path) -> Path:
    """Refuse, before any work, a folder that :func:`ensure_folder` could not make or use
    (it is a file, or its nearest existing parent is not writable); creates nothing."""
    path = Path(folder).expanduser()
    try:
        if path.exists():
            return ensure_folder(path, create=False)
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(f"Cannot create '{path}': '{parent}' is a file, not a directory. "
                            "Choose another folder.")
    except OSError as exc:
        raise UserError(os_message(path, exc)) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"Cannot write '{path}': permission denied (read-only folder?). "
                        "Choose another folder.")
    return path


def os_message(path: Path, exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot write '{path}': permission denied (read-only folder?). Choose another folder."
    if exc.errno == errno.ENOSPC:
        return f"Cannot write '{path}': the disk is full. Free some space or choose another disk."
    if exc.errno == errno.ENOENT:
        return f"Cannot write '{path}': its folder does not exist. Choose an existing folder."
    if exc.errno == errno.ENAMETOOLONG:
        return f"Cannot write '{path}': the name is too long. Choose a shorter name or folder."
    if exc.errno == errno.EEXIST:
        return (f"Cannot write '{path}': something of that name (a file or a broken link) is "
                "in the way. Choose another name.")
    if exc.errno == errno.EISDIR:
        return f"Cannot write '{path}': a folder of that name is in the way. Choose another name."
    return f"Cannot write '{path}': {exc.strerror or exc}."


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary file, then rename it to ``path``."""
    target = Path(path).expanduser()
    folder = target.parent
    try:
        folder_ok = folder.is_dir()
    except OSError as exc:  # a name too long ...
        raise UserError(os_message(target, exc)) from None
    if not folder_ok:
        raise UserError(f"Cannot write '{target}': folder '{folder}' does not exist. "
                        "Choose an existing folder.")
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _mode_for(target))
        os.replace(tmp_name, target)
        tmp_name = None
    except OSError as exc:
        raise UserError(os_message(target, exc)) from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    return target


def _mode_for(target: Path) -> int:
    """The permissions the written file should have: the replaced file's, or a new file's."""
    try:
        info = target.stat()
    except OSError:
        return _NEW_FILE_MODE
    return stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else _NEW_FILE_MODE


@contextlib.contextmanager
def atomic_folder(out_dir: str | Path) -> Iterator[Path]:
    """The folder to fill for ``out_dir``: when ``out_dir`` does not exist yet, a hidden
    folder beside it, renamed to ``out_dir`` (with a new folder's permissions) only when
    the block ends without an exception, and removed otherwise, so a failure or a kill
    leaves no folder at all; an existing folder is filled in place (each file should be
    written atomically). A UserError in one line when the folder cannot be made."""
    target = Path(out_dir).expanduser()
    if target.exists():
        yield ensure_folder(target)
        return
    parent = ensure_folder(target.parent if str(target.parent) else Path("."))
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise UserError(os_message(target, exc)) from None
    try:
        yield folder
        os.chmod(folder, 0o777 & ~current_umask())
        try:
            os.rename(folder, target)
        except OSError as exc:
            raise UserError(os_message(target, exc)) from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))
