"""Where images and weights come from in the window: File > Open Image and Open Recent,
the clipboard, drag and drop, Load weights file...; each ends in the document's image or
model state (the opening itself is a job the planner asks for)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu

from .document import Document
from .document.sources import ImageSource
from .imaging import encode_png
from .settings import Preferences

IMAGE_FILTER = ("Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp *.ppm *.pgm);;"
                "All files (*)")
WEIGHTS_FILTER = "PyTorch state dicts (*.pth *.pt *.bin *.ckpt);;All files (*)"


class FileCommands:
    """Opening images (dialog, recent files, clipboard, drops) and weights files."""

    def __init__(self, window: QMainWindow, doc: Document, prefs: Preferences,
                 recent_menu: QMenu) -> None:
        self.window, self.doc, self.prefs, self.recent_menu = window, doc, prefs, recent_menu
        doc.image.opened.connect(self._on_opened)
        self.update_recent_menu()

    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open image",
                                              self.prefs.last_folder, IMAGE_FILTER)
        if path:
            self.doc.image.open(path)

    def choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Load weights file",
                                              self.prefs.last_folder, WEIGHTS_FILTER)
        if path:
            self.doc.model.weights = path

    def paste(self) -> None:
        """The clipboard's image, image file or path to one."""
        clipboard = QGuiApplication.clipboard()
        mime = clipboard.mimeData()
        if mime is not None and mime.hasImage():
            image = clipboard.image()
            if not image.isNull():
                self.doc.image.open_bytes(encode_png(image), "<clipboard>")
                return
        if mime is not None and mime.hasUrls():
            files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if files:
                self.doc.image.open(files[0])
                return
        text = mime.text().strip() if mime is not None and mime.hasText() else ""
        if text and Path(text).expanduser().is_file():
            self.doc.image.open(text)
            return
        self.window.statusBar().showMessage("The clipboard holds no image.", 4000)

    def accepts(self, event: Any) -> None:
        mime = event.mimeData()
        if mime.hasImage() or any(u.isLocalFile() for u in mime.urls()):
            event.acceptProposedAction()

    def drop(self, event: Any) -> None:
        mime = event.mimeData()
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
        if files:
            self.doc.image.open(files[0])
            event.acceptProposedAction()
        elif mime.hasImage():
            image = mime.imageData()
            if image is not None and not image.isNull():
                self.doc.image.open_bytes(encode_png(image), "<dropped image>")
                event.acceptProposedAction()

    def _on_opened(self, source: ImageSource) -> None:
        if source.path:
            self.prefs.last_folder = str(Path(source.path).parent)
            self.prefs.add_recent_file(source.path)
            self.update_recent_menu()

    def update_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        files = self.prefs.recent_files()
        for i, path in enumerate(files):
            action = menu.addAction(f"&{(i + 1) % 10} {Path(path).name}")
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(partial(self.doc.image.open, path))
        if files:
            menu.addSeparator()
            menu.addAction("Clear Recent Files", self._clear_recent)
        menu.setEnabled(bool(files))

    def _clear_recent(self) -> None:
        self.prefs.clear_recent_files()
        self.update_recent_menu()
