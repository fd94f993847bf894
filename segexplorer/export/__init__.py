"""Files: PNG, NPZ, JSON and figures, written atomically. No Qt."""

from .atomic import atomic_write, check_folder, ensure_folder, write_bytes, write_text
from .bundle import explain_arrays, explain_report, library_versions, write_explain
from .files import save_figure, save_json, save_npz, save_png

__all__ = [
    "atomic_write", "check_folder", "ensure_folder", "write_bytes", "write_text",
    "explain_arrays", "explain_report", "library_versions", "write_explain",
    "save_figure", "save_json", "save_npz", "save_png",
]
