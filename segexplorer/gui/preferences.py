"""Edit > Preferences...: the settings that belong to no panel. For now the memory
budget (issue 22): how much memory the images of one model call may take, 'auto' (the
engine's default) or a number of GiB. It is the model state's ``memory_gib`` (the
document applies it to every session the window makes), remembered between runs."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QVBoxLayout,
    QWidget,
)

from ..engine.errors import UserError
from .document.states import ModelState, format_memory_setting, parse_memory_setting
from .settings import Preferences

#: where the setting is remembered ('auto' or a number of GiB)
MEMORY_SETTING = "performance/memory_gib"
MEMORY_HELP = ("How much memory the images of one model call may take: every batched "
               "run (sweeps, occlusion windows, integration steps, the evaluation's "
               "images) is chunked under it, with the same results for any budget. "
               "'auto': half the memory available on a CPU, the smaller of 8 GiB and "
               "half the card on a GPU (or SEGEXPLORER_GPU_MEMORY when it is set).")


def stored_memory(prefs: Preferences) -> float | None:
    """The remembered budget (None: auto, also for a value that no longer reads)."""
    try:
        return parse_memory_setting(str(prefs.value(MEMORY_SETTING, "auto") or "auto"))
    except UserError:
        return None


class PreferencesDialog(QDialog):
    """The memory budget, checked on OK: a bad value is refused in one line and the
    dialog stays open."""

    def __init__(self, model: ModelState, prefs: Preferences, current: Callable[[], str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("preferencesDialog")
        self.setWindowTitle("Preferences")
        self.model, self.prefs = model, prefs
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.memory = QLineEdit(format_memory_setting(model.memory_gib), self)
        self.memory.setObjectName("memoryBudgetEdit")
        self.memory.setPlaceholderText("auto")
        self.memory.setToolTip(MEMORY_HELP)
        form.addRow("Memory budget (GiB)", self.memory)
        layout.addLayout(form)
        help_text = QLabel(MEMORY_HELP, self)
        help_text.setWordWrap(True)
        help_text.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(help_text)
        shown = current()
        self.current = QLabel(f"Now: {shown}" if shown else "", self)
        self.current.setObjectName("memoryBudgetNow")
        self.current.setWordWrap(True)
        layout.addWidget(self.current)
        self.error = QLabel("", self)
        self.error.setObjectName("preferencesError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        layout.addWidget(buttons)
        self.setMinimumWidth(420)

    def accept(self) -> None:
        try:
            self.model.set_memory(self.memory.text())
        except UserError as exc:
            self.error.setText(exc.message)
            return
        self.prefs.set_value(MEMORY_SETTING, format_memory_setting(self.model.memory_gib))
        super().accept()


class PreferencesCommand:
    """The Preferences action (Edit menu), and the remembered setting taken in at start."""

    def __init__(self, window: QMainWindow, model: ModelState, prefs: Preferences,
                 current: Callable[[], str]) -> None:
        self.window, self.model, self.prefs, self.current = window, model, prefs, current
        model.memory_gib = stored_memory(prefs)
        self.action = QAction("Pr&eferences...", window)
        self.action.setShortcut(QKeySequence(QKeySequence.StandardKey.Preferences))
        self.action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.action.setStatusTip("The memory budget of the model's runs")
        self.action.triggered.connect(lambda *_: self.open())
        self.dialog: PreferencesDialog | None = None

    def attach(self, menu: QMenu) -> None:
        menu.addSeparator()
        menu.addAction(self.action)

    def open(self) -> PreferencesDialog:
        """Show the dialog (window-modal, not blocking: tests fill it in)."""
        self.dialog = PreferencesDialog(self.model, self.prefs, self.current, self.window)
        self.dialog.open()
        return self.dialog
