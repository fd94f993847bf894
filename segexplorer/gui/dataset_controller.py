"""File > Open Dataset... and Run Batch on Folder...: the dataset window's controller,
which talks to the document (its dataset state, and its explainer for an image of the
batch), and the dialog that asks where a batch reads and writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ..engine.methods import METHOD_REGISTRY
from .dataset_window import DatasetWindow
from .document import Document
from .document.choices import METHOD_LABELS
from .document.dataset import BatchProposal, BatchSettings, OpenRequest
from .document.dataset_view import dataset_window_view
from .document.presenting import Presenters
from .settings import Preferences


class RunBatchDialog(QDialog):
    """Where the images are, where the batch writes, and what it explains: the methods,
    the classes and the working size (the model is the main window's). Opened on a batch
    folder, it offers to continue that batch: its folders and its own options, which a
    batch needs to continue; another output folder makes it a new batch again."""

    def __init__(self, proposal: BatchProposal, model_text: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runBatchDialog")
        self.setWindowTitle("Continue Batch" if proposal.continuing else "Run Batch on Folder")
        self.proposal = proposal
        form = QFormLayout(self)
        self.input = QLineEdit(proposal.source, self)
        self.input.setObjectName("batchInput")
        self.output = QLineEdit(proposal.out, self)
        self.output.setObjectName("batchOutput")
        for label, edit, title in (("Images", self.input, "Folder of images"),
                                   ("Output", self.output, "Output folder")):
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            browse = QPushButton("Browse...", self)
            browse.clicked.connect(lambda _c=False, e=edit, t=title: self._browse(e, t))
            row.addWidget(browse)
            form.addRow(label, row)
        methods = QGridLayout()
        self.methods: dict[str, QCheckBox] = {}
        for i, (name, label) in enumerate(METHOD_LABELS.items()):
            box = QCheckBox(label, self)
            box.setObjectName(f"batchMethod_{name}")
            box.setToolTip(METHOD_REGISTRY[name].summary if name in METHOD_REGISTRY else "")
            self.methods[name] = box
            methods.addWidget(box, i // 3, i % 3)
        form.addRow("Methods", methods)
        self.targets = QLineEdit(self)
        self.targets.setObjectName("batchTargets")
        self.targets.setToolTip("'all': every class each image predicts; or class names or "
                                "indices, comma-separated")
        form.addRow("Classes", self.targets)
        self.working_size = QSpinBox(self)
        self.working_size.setObjectName("batchSize")
        self.working_size.setRange(0, 4096)
        self.working_size.setSingleStep(32)
        self.working_size.setSuffix(" px")
        self.working_size.setSpecialValueText("the model's own")
        form.addRow("Working size", self.working_size)
        self.note = QLabel("", self)
        self.note.setObjectName("batchNote")
        self.note.setWordWrap(True)
        form.addRow(self.note)
        self.model_text = model_text
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.run = buttons.addButton("Run", QDialogButtonBox.ButtonRole.AcceptRole)
        self.run.setObjectName("batchRun")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._show_settings(proposal.settings)
        self.input.textChanged.connect(self._suggest_output)
        self.output.textChanged.connect(lambda _t: self._sync())
        for box in self.methods.values():
            box.toggled.connect(lambda _on: self._sync())
        self._sync()
        self.resize(600, self.sizeHint().height())

    def _show_settings(self, settings: BatchSettings) -> None:
        for name, box in self.methods.items():
            box.setChecked(name in settings.methods)
        self.targets.setText(settings.targets)
        self.working_size.setValue(settings.size or 0)

    @property
    def continuing(self) -> bool:
        """Run continues the proposed batch (its output folder is kept)."""
        return self.proposal.continuing and \
            Path(self.output.text()).expanduser() == Path(self.proposal.out)

    def settings(self) -> BatchSettings:
        chosen = tuple(name for name, box in self.methods.items() if box.isChecked())
        return BatchSettings(chosen, self.targets.text().strip() or "all",
                             self.working_size.value() or None)

    def _sync(self) -> None:
        continuing = self.continuing
        if continuing:  # a batch continues with its own options only
            self._show_settings(self.proposal.settings)
        widgets: list[QWidget] = [*self.methods.values(), self.targets, self.working_size]
        for widget in widgets:
            widget.setEnabled(not continuing)
        self.note.setText(self.proposal.note if continuing else
                          f"A new batch with {self.model_text} (the main window's model). A "
                          "stopped batch continues when run again with the same folders.")
        self.run.setText("Continue" if continuing else "Run")
        self.run.setEnabled(any(box.isChecked() for box in self.methods.values()))

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
            self.dataset_window = DatasetWindow(self.document, self._run_requested)
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

    def choose_batch(self) -> RunBatchDialog:
        """Run Batch...: a dialog that offers to continue the batch the dataset window
        shows, else a new one; Run starts it. Returned (it is window-modal, not blocking)."""
        model = self.doc.model.choice
        text = f"{Path(model.architecture).name} [{model.weights}] on {model.device}"
        proposal = self.document.batch_proposal(model, self.doc.analysis.choice,
                                                self.prefs.last_folder)
        parent = self.dataset_window if self.dataset_window is not None \
            and self.dataset_window.isVisible() else self.parent
        dialog = RunBatchDialog(proposal, text, parent)
        dialog.accepted.connect(lambda: self._run_chosen(dialog))
        dialog.finished.connect(lambda _r: dialog.deleteLater())
        dialog.open()
        return dialog

    def _run_requested(self) -> None:
        self.choose_batch()

    def _run_chosen(self, dialog: RunBatchDialog) -> None:
        if not dialog.input.text().strip():
            return
        self.show_window()
        self.document.run_proposal(dialog.proposal, dialog.input.text(), dialog.output.text(),
                                   dialog.settings(), memory_gib=self.doc.model.memory_gib)

    def run_batch(self, input_folder: str | Path, out_folder: str | Path) -> DatasetWindow:
        """Run a batch with the explainer's model and options; its window follows it."""
        window = self.show_window()
        self.document.run_batch(input_folder, out_folder, self.doc.model.choice,
                                self.doc.analysis.choice,
                                memory_gib=self.doc.model.memory_gib)
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
