"""What a batch runs on: a folder (recursive), a glob, or a text file of paths.

Every input becomes a list of :class:`BatchItem`: the path to open and a *key*, the
image's path relative to the input's base folder with ``/`` separators. The key names the
image everywhere (``DIR/images/<key>/``, the summary's ``image`` column, the journal), so
it must not depend on anything but the input: a resumed run finds the same keys.

* a folder: every regular file below it, hidden files and folders (``.name``) left out.
  Files are not filtered by their names: a file that is not an image is tried like any
  other and ends in ``errors.csv`` (Pillow recognises images by their content);
* a glob (``photos/**/*.jpg``; ``**`` matches across folders): the matching files, keys
  relative to the folder before the first wildcard;
* a text file (``.txt``/``.lst``/``.list``, UTF-8): one path per line, relative paths
  relative to the text file's folder; blank lines and lines starting with ``#`` are
  ignored. Keys are relative to that folder; a path outside it keeps its absolute path
  (without the leading ``/`` or drive) as its key. Missing files end in ``errors.csv``;
* a single image file: a batch of one.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..engine.errors import UserError

LIST_SUFFIXES = (".txt", ".lst", ".list")
FOLDER, GLOB, LIST, SINGLE = "folder", "glob", "list", "file"


@dataclass(frozen=True)
class BatchItem:
    key: str  # relative path, '/'-separated: names the image's output folder
    path: str  # the file to open


@dataclass(frozen=True)
class BatchInput:
    kind: str  # folder, glob, list or file
    text: str  # as the user gave it
    base: Path  # absolute: keys are relative to it

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.text, "base": str(self.base)}


def resolve_input(text: str) -> BatchInput:
    """Say what ``text`` is (one line if it is nothing usable)."""
    if not text.strip():
        raise UserError("No input given: name a folder, a glob or a text file of paths.")
    path = Path(text).expanduser()
    try:
        if path.is_dir():
            return BatchInput(FOLDER, text, path.resolve())
        if path.is_file():
            if path.suffix.lower() in LIST_SUFFIXES:
                return BatchInput(LIST, text, path.resolve().parent)
            return BatchInput(SINGLE, text, path.resolve().parent)
    except OSError as exc:
        raise UserError(f"Input '{text}' cannot be read ({exc.strerror or exc}): check the "
                        "path.") from None
    if glob.has_magic(text):
        return BatchInput(GLOB, text, _glob_base(path))
    raise UserError(f"Input '{text}' does not exist: give a folder, a glob such as "
                    "'photos/*.jpg', or a text file of paths (.txt).")


def _glob_base(pattern: Path) -> Path:
    parts = []
    for part in pattern.parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    base = Path(*parts) if parts else Path(".")
    return base.resolve()


def list_items(spec: BatchInput) -> list[BatchItem]:
    """The input's images, sorted by key, each key once."""
    if spec.kind == FOLDER:
        items = [_item(p, spec.base) for p in _walk(spec.base)]
    elif spec.kind == SINGLE:
        path = Path(spec.text).expanduser()
        items = [BatchItem(path.name, str(path))]
    elif spec.kind == GLOB:
        found = glob.glob(os.path.expanduser(spec.text), recursive=True)
        items = [_item(Path(p), spec.base) for p in found if os.path.isfile(p)]
    else:
        items = _read_list(Path(spec.text).expanduser(), spec.base)
    unique: dict[str, BatchItem] = {}
    for item in items:
        unique.setdefault(item.key, item)
    if not unique:
        raise UserError(f"Input '{spec.text}' holds no files: check the path or the pattern.")
    return [unique[k] for k in sorted(unique)]


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            path = Path(folder) / name
            if not name.startswith(".") and path.is_file():
                found.append(path)
    return found


def _read_list(list_file: Path, base: Path) -> list[BatchItem]:
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"List of images '{list_file}' cannot be read ({exc}): save it as "
                        "UTF-8 text, one path per line.") from None
    items = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry).expanduser()
        if not path.is_absolute():
            path = list_file.parent / path
        items.append(_item(path, base, opened=str(path)))
    return items


def _item(path: Path, base: Path, opened: str | None = None) -> BatchItem:
    absolute = Path(os.path.abspath(path))
    try:
        key = PurePosixPath(*absolute.relative_to(base).parts)
    except ValueError:  # outside the base: the absolute path, without its anchor
        key = PurePosixPath(*absolute.parts[1:])
    return BatchItem(str(key), opened if opened is not None else str(path))
