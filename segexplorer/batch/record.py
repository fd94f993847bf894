"""A batch's memory on disk: the run record (``run.json``) and the journal.

``run.json`` holds the arguments that decide what the outputs contain (input, model,
weights, working size, targets, methods and their options, precision, which files each
image gets). A run into a
folder that has one continues it when they are the same and is refused, in one line,
when they differ. The device and the engine are not among them: a run started on a CPU
may be finished on a GPU or on Ray (the numbers agree to float rounding).

The journal (``journal.jsonl``) is the source of truth of what is done: one line per
finished image, appended (written, flushed, fsynced) only after that image's folder is
complete and in place. A kill (SIGKILL, a power cut) can leave at most a torn last line:
it is cut off when the journal is next opened, and that image is done again. Images
with a line are never done again; an image whose line is missing is done again and its
folder replaced whole. Readers keep the last line of a key, so even a journal written
by two runs at once could not give a duplicate row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.errors import UserError
from ..export.atomic import write_text

RUN_FILE = "run.json"
JOURNAL_FILE = "journal.jsonl"
FORMAT = "segexplorer-batch"
VERSION = 1
OK, ERROR = "ok", "error"

# how each recorded argument is written in the refusal, as the command line spells it
FLAGS = {
    "input": "INPUT", "model": "--model", "weights": "--weights", "size": "--size",
    "targets": "--target", "methods": "--methods", "layer": "--layer",
    "segments": "--segments", "baseline": "--baseline", "upsample": "--upsample",
    "aggregation": "--aggregation", "precision": "--fast", "outputs": "--outputs",
    "with": "--with", "with_weights": "--with-weights", "with_size": "--with-size",
    "with_layer": "--with-layer", "resample_maps": "--resample-maps",
}
# what a record written before an argument existed meant by leaving it out
DEFAULTS = {"outputs": "full"}


def check_record(folder: Path, arguments: dict[str, Any]) -> dict[str, Any] | None:
    """The folder's run record, if any; UserError when its arguments differ."""
    path = folder / RUN_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        recorded = record["arguments"]
        if record.get("format") != FORMAT or not isinstance(recorded, dict):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"'{path}' is not a SegExplorer batch record: choose another --out "
                        "folder.") from None
    for name in FLAGS:
        there = recorded.get(name, DEFAULTS.get(name))
        if there != arguments.get(name, DEFAULTS.get(name)):
            raise UserError(
                f"'{folder}' holds a batch run with other arguments ({FLAGS[name]} "
                f"{_show(there)} there, {_show(arguments.get(name))} here): "
                "repeat that run's arguments to continue it, or choose another --out folder.")
    return dict(record)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("path", value))
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "(default)" if value is None else str(value)


def write_record(folder: Path, arguments: dict[str, Any], extra: dict[str, Any]) -> None:
    record = {"format": FORMAT, "version": VERSION, "arguments": arguments, **extra}
    write_text(folder / RUN_FILE, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def read_record(folder: Path) -> dict[str, Any]:
    path = Path(folder) / RUN_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"'{folder}' is not a batch output folder (it has no {RUN_FILE}): "
                        "choose the folder 'segexplorer batch --out' wrote.") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"'{path}' cannot be read ({exc}): choose another folder.") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise UserError(f"'{path}' is not a SegExplorer batch record: choose another folder.")
    return record


@dataclass
class Journal:
    """The finished images of a batch folder, read once and appended to."""

    path: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> last line
    repaired: bool = False  # a torn last line was cut off

    @classmethod
    def open(cls, folder: Path, repair: bool = True, slim: bool = False) -> Journal:
        """Read the journal; ``repair`` cuts a torn last line off the file (a writer only:
        a reader of a running batch must not touch it); ``slim`` keeps only each line's
        key and status (what a run needs to know what is done: its memory does not grow
        with the images' rows)."""
        journal = cls(Path(folder) / JOURNAL_FILE)
        try:
            data = journal.path.read_bytes()
        except FileNotFoundError:
            return journal
        good = 0  # bytes up to the end of the last complete line
        for raw in _lines(data):
            end = good + len(raw)
            if not raw.endswith(b"\n"):
                break  # torn: the writer was killed inside this line
            entry = _parse(raw)
            if entry is not None:
                journal.entries[entry["key"]] = _slim(entry) if slim else entry
            good = end
        if good < len(data):
            journal.repaired = True
            if repair:
                with open(journal.path, "r+b") as handle:
                    handle.truncate(good)
                    handle.flush()
                    os.fsync(handle.fileno())
        return journal

    def append(self, entry: dict[str, Any]) -> None:
        """One line, on disk (fsynced) when this returns. Only its key and status are kept
        in memory (a run of 100,000 images keeps its memory flat): read the journal again
        (:meth:`open`) for the rows."""
        line = json.dumps(entry, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        data = (line + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.entries[entry["key"]] = _slim(entry)

    def done(self) -> set[str]:
        return set(self.entries)

    def ok(self) -> list[dict[str, Any]]:
        return [e for e in self.entries.values() if e.get("status") == OK]

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.entries.values() if e.get("status") == ERROR]


def _slim(entry: dict[str, Any]) -> dict[str, Any]:
    return {"key": entry["key"], "status": entry.get("status")}


def _lines(data: bytes) -> Iterator[bytes]:
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            yield data[start:]
            return
        yield data[start:end + 1]
        start = end + 1


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None  # a line damaged by a power cut: that image is done again
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        return None
    return entry
