"""The window's export commands: file dialogs and the clipboard over the document's exports.

What is written, and how, is :class:`segexplorer.gui.document.exports.Exports`'s (jobs,
atomic files); this controller asks where, composes what the canvas shows, and copies it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QWidget

from .canvas import ImageCanvas
from .document import Document
from .document.exports import Exports
from .document.session_file import SUFFIX as SESSION_SUFFIX
from .document.session_record import SessionRecord
from .imaging import from_qimage, to_qimage
from .multiview import MultiView
from .settings import Preferences


class ExportsController(QObject):
    """File > Export..., Edit > Copy View and the ablation panel's exports."""

    def __init__(self, document: Document, exports: Exports, record: SessionRecord,
                 parent: QWidget,
                 prefs: Preferences, canvas: ImageCanvas, multi_view: MultiView,
                 status: Callable[[str, int], None],
                 error: Callable[[str], None]) -> None:
        super().__init__(parent)
        self.doc = document
        self.exports = exports
        self.record = record  # File > Open/Save Session go through it (unsaved work)
        self.parent_widget = parent
        self.prefs = prefs
        self.canvas = canvas
        self.multi_view = multi_view
        self._status = status
        self._error = error

    # -- what the window shows -----------------------------------------------------------
    def current_view_image(self, working: bool = False) -> np.ndarray | None:
        """What the window shows, as H x W x 4 RGBA: at the image's own resolution (the
        overlays resampled onto it), or at the working resolution (the model's pixels;
        side-by-side panels are always that)."""
        if self.doc.view.side_by_side and self.multi_view.panels():
            return self.multi_view.compose()
        image = self.canvas.compose(working)
        return from_qimage(image) if image is not None else None

    def copy_view(self) -> None:
        rgba = self.current_view_image()
        if rgba is None:
            return
        QGuiApplication.clipboard().setImage(to_qimage(rgba))
        self._status(f"Copied the view ({rgba.shape[1]} x {rgba.shape[0]} px) to the "
                     "clipboard.", 4000)

    # -- writing -------------------------------------------------------------------------
    def export_view(self, path: str | Path, working: bool = False) -> None:
        """Save the current view as a PNG (in a job: writes are atomic), at the image's
        own resolution or at the working one."""
        rgba = self.current_view_image(working)
        if rgba is not None:
            self.exports.view(path, rgba, working)

    def export_figure(self, path: str | Path) -> None:
        """The attribution as Captum draws it: image and the view with each sign."""
        why_not = self.exports.figure(path)
        if why_not is not None:
            self._error(why_not)

    def export_all(self, folder: str | Path) -> None:
        self.exports.all(folder)

    def export_ablation(self, folder: str | Path) -> None:
        self.exports.ablation(folder)

    def export_history(self, path: str | Path) -> None:
        self.exports.ablation_history(path)

    # -- dialogs -------------------------------------------------------------------------
    def export_folder(self) -> str:
        """Where export dialogs start: the latest export's folder; else the image's, unless
        that is inside SegExplorer itself (the sample image); else the home folder."""
        folder = self.prefs.last_export_folder
        if folder is not None:
            return folder
        source = self.doc.image.source
        package = Path(__file__).resolve().parents[1]
        if source is not None and source.path:
            parent = Path(source.path).resolve().parent
            if package not in (parent, *parent.parents) and parent.is_dir():
                return str(parent)
        return str(Path.home())

    def _save_name(self, title: str, suffix: str, filters: str) -> tuple[str, str]:
        name = self.exports.default_name(self.export_folder(), suffix)
        path, selected = QFileDialog.getSaveFileName(self.parent_widget, title, name, filters)
        return path, selected

    def choose_export_view(self, working: bool = False) -> None:
        title = ("Export view at the working resolution" if working
                 else "Export view as PNG (the image's own resolution)")
        path, _ = self._save_name(title, ".png", "PNG image (*.png)")
        if path:
            self.export_view(path if path.lower().endswith(".png") else path + ".png",
                             working)

    def choose_export_figure(self) -> None:
        path, selected = self._save_name(
            "Export figure", ".png", "PNG image (*.png);;SVG drawing (*.svg);;PDF document (*.pdf)")
        if path:
            if Path(path).suffix.lower() not in (".png", ".svg", ".pdf"):
                path += "." + selected.split("*.")[-1].rstrip(")")
            self.export_figure(path)

    def _folder(self, title: str) -> str:
        return QFileDialog.getExistingDirectory(self.parent_widget, title,
                                                self.export_folder())

    def choose_export_all(self) -> None:
        folder = self._folder("Export all into folder")
        if folder:
            self.export_all(folder)

    def choose_export_ablation(self) -> None:
        if self.doc.ablation.shown is None:
            return
        folder = self._folder("Export ablation into folder")
        if folder:
            self.export_ablation(folder)

    # -- sessions ------------------------------------------------------------------------
    def choose_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent_widget, "Open session",
                                              self.prefs.last_folder,
                                              f"SegExplorer sessions (*{SESSION_SUFFIX})")
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path) -> None:
        """Open a session file (a file that is not one is reported in one line)."""
        from ..engine.errors import UserError

        try:
            self.record.open(path)
        except UserError as exc:
            self._error(exc.message)

    def choose_session_file(self) -> None:
        source = self.doc.image.source
        if source is None:
            return
        stem = Path(source.label).stem.strip("<>") or "session"
        path, _ = QFileDialog.getSaveFileName(
            self.parent_widget, "Save session",
            str(Path(self.export_folder()) / (stem + SESSION_SUFFIX)),
            f"SegExplorer sessions (*{SESSION_SUFFIX})")
        if path:
            self.record.save(path if path.endswith(SESSION_SUFFIX)
                                 else path + SESSION_SUFFIX)

    def choose_evaluation_curves(self) -> None:
        if self.doc.evaluation.result() is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self.parent_widget, "Save the evaluation's curves",
            str(Path(self.export_folder()) / "curves.png"),
            "PNG image (*.png);;SVG (*.svg);;PDF (*.pdf)")
        if path:
            self.exports.evaluation_curves(path)

    def choose_evaluation_numbers(self) -> None:
        if self.doc.evaluation.result() is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self.parent_widget, "Save the evaluation's numbers",
            str(Path(self.export_folder()) / "evaluation.json"), "JSON (*.json);;CSV (*.csv)")
        if path:
            self.exports.evaluation_numbers(path)

    def export_evaluation(self, path: str | Path, every_target: bool = False) -> None:
        """The evaluation's curves (.png, .svg, .pdf) or numbers (.json, .csv)."""
        if Path(path).suffix.lower() in (".json", ".csv"):
            self.exports.evaluation_numbers(path)
        else:
            self.exports.evaluation_curves(path, every_target)

    def choose_export_history(self) -> None:
        if not self.doc.ablation.history:
            return
        path, _ = QFileDialog.getSaveFileName(
            self.parent_widget, "Export ablation history",
            str(Path(self.export_folder()) / "ablation_history.json"), "JSON (*.json)")
        if path:
            self.export_history(path if path.lower().endswith(".json") else path + ".json")
