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
from .imaging import from_qimage, to_qimage
from .multiview import MultiView
from .settings import Preferences


class ExportsController(QObject):
    """File > Export..., Edit > Copy View and the ablation panel's exports."""

    def __init__(self, document: Document, exports: Exports, parent: QWidget,
                 prefs: Preferences, canvas: ImageCanvas, multi_view: MultiView,
                 status: Callable[[str, int], None],
                 error: Callable[[str], None]) -> None:
        super().__init__(parent)
        self.doc = document
        self.exports = exports
        self.parent_widget = parent
        self.prefs = prefs
        self.canvas = canvas
        self.multi_view = multi_view
        self._status = status
        self._error = error

    # -- what the window shows -----------------------------------------------------------
    def current_view_image(self) -> np.ndarray | None:
        """What the window shows, as H x W x 4 RGBA at native (working) resolution."""
        if self.doc.view.side_by_side and self.multi_view.panels():
            return self.multi_view.compose()
        image = self.canvas.compose()
        return from_qimage(image) if image is not None else None

    def copy_view(self) -> None:
        rgba = self.current_view_image()
        if rgba is None:
            return
        QGuiApplication.clipboard().setImage(to_qimage(rgba))
        self._status(f"Copied the view ({rgba.shape[1]} x {rgba.shape[0]} px) to the "
                     "clipboard.", 4000)

    # -- writing -------------------------------------------------------------------------
    def export_view(self, path: str | Path) -> None:
        """Save the current view as a PNG (in a job: writes are atomic)."""
        rgba = self.current_view_image()
        if rgba is not None:
            self.exports.view(path, rgba)

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
    def _save_name(self, title: str, suffix: str, filters: str) -> tuple[str, str]:
        name = self.exports.default_name(self.prefs.last_folder, suffix)
        path, selected = QFileDialog.getSaveFileName(self.parent_widget, title, name, filters)
        return path, selected

    def choose_export_view(self) -> None:
        path, _ = self._save_name("Export view as PNG", ".png", "PNG image (*.png)")
        if path:
            self.export_view(path if path.lower().endswith(".png") else path + ".png")

    def choose_export_figure(self) -> None:
        path, selected = self._save_name(
            "Export figure", ".png", "PNG image (*.png);;SVG drawing (*.svg);;PDF document (*.pdf)")
        if path:
            if Path(path).suffix.lower() not in (".png", ".svg", ".pdf"):
                path += "." + selected.split("*.")[-1].rstrip(")")
            self.export_figure(path)

    def _folder(self, title: str) -> str:
        return QFileDialog.getExistingDirectory(self.parent_widget, title,
                                                self.prefs.last_folder)

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

    def choose_export_history(self) -> None:
        if not self.doc.ablation.history:
            return
        path, _ = QFileDialog.getSaveFileName(
            self.parent_widget, "Export ablation history",
            str(Path(self.prefs.last_folder) / "ablation_history.json"), "JSON (*.json)")
        if path:
            self.export_history(path if path.lower().endswith(".json") else path + ".json")
