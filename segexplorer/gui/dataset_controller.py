"""File > Open Dataset... and Run Batch on Folder...: the dataset window's controller,
which talks to the document (its dataset state, and its explainer for an image of the
batch), and the dialog that asks where a batch reads and writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from .dataset_window import DatasetWindow
from .document import Document
from .document.dataset import OpenRequest
from .document.dataset_view import dataset_window_view
from .document.presenting import Presenters
from .settings import Preferences


class RunBatchDialog(QDialog):
    """Where the images are and where the batch writes; the model is the main window's."""

    def __init__(self, model_text: str, folder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run Batch on Folder")
        form = QFormLayout(self)
        self.input = QLineEdit(folder, self)
        self.input.setObjectName("batchInput")
        self.output = QLineEdit("", self)
        self.output.setObjectName("batchOutput")
        for label, edit, title in (("Images", self.input, "Folder of images"),
                                   ("Output", self.output, "Output folder")):
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            browse = QPushButton("Browse...", self)
            browse.clicked.connect(lambda _c=False, e=edit, t=title: self._browse(e, t))
            row.addWidget(browse)
            form.addRow(label, row)
        self.input.textChanged.connect(self._suggest_output)
        self._suggest_output(folder)
        note = QLabel(f"Model and options: {model_text} (the main window's). A stopped batch "
                      "continues where it stopped when run again with the same folders.", self)
        note.setWordWrap(True)
        form.addRow(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.run = buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.resize(560, self.sizeHint().height())

    def _browse(self, edit: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title, edit.text())
        if path:
            edit.setText(path)

    def _suggest_output(self, text: str) -> None:
        if text and not self.output.isModified():
            self.output.setText(str(Path(text).expanduser()) .rstrip("/\\") + "-segexplorer")


class DatasetController:
    """The main window's File > Open Dataset... and Run Batch on Folder..., the dataset
    window, and opening its images in the explainer with the batch's model."""

    def __init__(self, doc: Document, presenters: Presenters, parent: QWidget,
                 prefs: Preferences, open_card: Callable[[str], bool],
                 error: Callable[[str], None],
                 accept_second: Callable[[str], bool] = lambda _path: True,
                 show_comparison: Callable[[], None] = lambda: None) -> None:
        self.doc, self.presenters, self.parent, self.prefs = doc, presenters, parent, prefs
        self.open_card = open_card
        self.accept_second = accept_second  # model B's card (batch --with), asked about
        self.show_comparison = show_comparison
        self.document = doc.dataset
        self.dataset_window: DatasetWindow | None = None
        self.open_action = QAction("Open &Dataset...", parent)
        self.open_action.setStatusTip("Open a folder 'segexplorer batch' wrote: its images, "
                                      "per-class figures and context matrix")
        self.open_action.triggered.connect(lambda *_a: self.choose_dataset())
        self.run_action = QAction("Run &Batch on Folder...", parent)
        self.run_action.setStatusTip("Explain every image of a folder with this model and "
                                     "these options (resumable)")
        self.run_action.triggered.connect(lambda *_a: self.choose_batch())
        self.document.open_requested.connect(self.open_in_explainer)
        self.document.failed.connect(error)

    def attach(self, menu: Any, before: QAction | None) -> None:
        menu.insertActions(before, [self.open_action, self.run_action])

    def show_window(self) -> DatasetWindow:
        if self.dataset_window is None:
            self.dataset_window = DatasetWindow(self.document, self.choose_batch)
            self.presenters.add(dataset_window_view, self.dataset_window.apply, "dataset")
        self.dataset_window.show()
        self.dataset_window.raise_()
        return self.dataset_window

    def choose_dataset(self) -> None:
        path = QFileDialog.getExistingDirectory(self.parent, "Open batch output folder",
                                                self.prefs.last_folder)
        if path:
            self.open_dataset(path)

    def open_dataset(self, folder: str | Path) -> DatasetWindow:
        window = self.show_window()
        self.document.open_folder(folder)
        return window

    def choose_batch(self) -> None:
        model = self.doc.model.choice
        text = f"{Path(model.architecture).name} [{model.weights}] at {model.size} px on " \
               f"{model.device}"
        dialog = RunBatchDialog(text, self.prefs.last_folder, self.parent)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.input.text():
            self.run_batch(dialog.input.text(), dialog.output.text())

    def run_batch(self, input_folder: str | Path, out_folder: str | Path) -> DatasetWindow:
        """Run a batch with the explainer's model and options; its window follows it."""
        window = self.show_window()
        self.document.run_batch(input_folder, out_folder, self.doc.model.choice,
                                self.doc.analysis.choice, self.doc.model.memory_gib)
        return window

    def open_in_explainer(self, request: OpenRequest) -> None:
        """Open a batch image in the explainer, with the batch's model and options (a
        card that runs code is asked about first); a comparison batch's image opens
        compared with its model B, the Compare panel shown."""
        if request.card is not None and self.doc.model.architecture != request.card \
                and not self.open_card(request.card):
            return  # a card that runs code, declined; or a card that is gone (shown)
        second = request.compare_card
        if second is not None and second not in (request.card,
                                                  self.doc.comparison.model.architecture) \
                and not self.accept_second(second):
            return
        self.doc.open_request(request)
        if request.compare_with is not None:
            self.show_comparison()
        window = self.parent.window()
        window.show()
        window.raise_()
        window.activateWindow()

    def close(self) -> None:
        if self.dataset_window is not None:
            self.dataset_window.close()
