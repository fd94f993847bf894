"""Ablate mode's Qt side: its actions, the tool button, and the ablation panel.

The state (selection, history, what is shown, the tool) is the document's
(:class:`segexplorer.gui.document.ablation.AblationState`); the actions and the panel
edit it, and :meth:`AblateController.apply` shows the presenter's
:class:`~segexplorer.gui.document.panel_views.AblationView`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSignalBlocker, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QToolButton, QWidget

from .ablation_panel import AblationPanel
from .binding import on_fields

if TYPE_CHECKING:
    from .document import Document
    from .document.panel_views import AblationView


class AblateController(QObject):
    """The ablate-mode actions and the ablation panel, over the document's ablation."""

    def __init__(self, document: Document, parent: QWidget,
                 choose_export: Callable[[], None],
                 choose_export_history: Callable[[], None]) -> None:
        super().__init__(parent)
        ablation = document.ablation
        self.panel = AblationPanel()
        self.action = QAction("&Ablate Mode", parent)
        self.action.setCheckable(True)
        self.action.setIconText("Ablate")  # the canvas bar's button
        self.action.setShortcut(QKeySequence("A"))
        tip = "Ablate mode (A): click a segment to see what the model does without it"
        self.action.setToolTip(tip)
        self.action.setStatusTip(tip)
        self.action.toggled.connect(lambda on: ablation.set_active(bool(on)))

        def show_mode() -> None:
            with QSignalBlocker(self.action):
                self.action.setChecked(ablation.active)

        on_fields(ablation, "active", show_mode)
        self.reset_action = QAction("&Reset Ablation", parent)
        self.reset_action.setStatusTip("Back to the original image (Esc in ablate mode)")
        self.reset_action.triggered.connect(lambda *_: ablation.reset())
        self.undo_action = QAction("&Undo Ablation Step", parent)
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.undo_action.setStatusTip("Back to what was ablated before the last click")
        self.undo_action.triggered.connect(lambda *_: ablation.undo())
        self.redo_action = QAction("Re&do Ablation Step", parent)
        self.redo_action.setShortcuts([QKeySequence(QKeySequence.StandardKey.Redo),
                                       QKeySequence("Ctrl+Y")])
        self.redo_action.triggered.connect(lambda *_: ablation.redo())
        self.export_action = QAction("Export A&blation...", parent)
        self.export_action.setStatusTip("The shown ablation's files, as 'segexplorer "
                                        "ablate' writes them")
        self.export_action.triggered.connect(lambda *_: choose_export())
        self._shown_signature: tuple[object, ...] | None = None
        self.panel.bind(ablation, document.analysis, choose_export, choose_export_history)

    def make_tool_button(self, parent: QWidget) -> QToolButton:
        button = QToolButton(parent)
        button.setObjectName("ablateModeButton")
        button.setDefaultAction(self.action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        return button

    def apply(self, view: AblationView) -> None:
        """Show the presenter's ablation view (cheap when nothing changed)."""
        self.export_action.setEnabled(view.can_export)
        self.reset_action.setEnabled(view.can_reset)
        self.undo_action.setEnabled(view.can_undo)
        self.redo_action.setEnabled(view.can_redo)
        self.panel.set_model_words(view.segment_labels, view.segments_tip, view.changed_tip,
                                   view.scores_title)
        if view.signature == self._shown_signature:
            return
        self._shown_signature = view.signature
        panel = self.panel
        if not view.has_prediction:
            panel.show_nothing()
            panel.set_history([], None)
            panel.set_sweep_status(view.sweep_text, False)
            return
        result = view.result
        if result is None:
            panel.show_nothing(view.thumbnails)
        else:
            panel.show_result(result.summary, result.details, view.thumbnails or {},
                              result.categories, result.colors, result.before, result.after,
                              result.emphasis)
        if view.status is not None:
            panel.show_status(*view.status)
        panel.set_history(list(view.history), view.current)
        panel.set_sweep_status(view.sweep_text, view.can_precompute)
