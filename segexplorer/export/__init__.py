"""Files: PNG, NPZ, JSON and figures, written atomically. No Qt.

The names below are imported on first use (PEP 562), so that the torch-free modules of
this package (``atomic``, ``files``, ``outputs``) can be imported without the engine:
``import segexplorer.export.atomic`` does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names are, for type checkers (imported lazily at run time)
    from .atomic import atomic_write, check_folder, ensure_folder, write_bytes, write_text
    from .bundle import (
        explain_arrays,
        explain_files,
        explain_report,
        library_versions,
        write_explain,
    )
    from .files import save_figure, save_json, save_npz, save_png

_WHERE = {
    "atomic_write": "atomic", "check_folder": "atomic", "ensure_folder": "atomic",
    "write_bytes": "atomic", "write_text": "atomic",
    "explain_arrays": "bundle", "explain_files": "bundle", "explain_report": "bundle",
    "library_versions": "bundle", "write_explain": "bundle",
    "save_figure": "files", "save_json": "files", "save_npz": "files", "save_png": "files",
}

__all__ = [
    "atomic_write", "check_folder", "ensure_folder", "write_bytes", "write_text",
    "explain_arrays", "explain_files", "explain_report", "library_versions", "write_explain",
    "save_figure", "save_json", "save_npz", "save_png",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
