"""The Compare panel (Model > Compare With...): model B's choosers, the memory the two
models take, the per-class table, and both models' score charts in ablate mode; and the
commands that open and close the comparison.

B's choosers are the Model panel's own (:class:`~.model_panel.ModelPanel`, bound to the
comparison's ``model``; its device and arithmetic are A's). Everything shown comes from
the presenter's :class:`~.document.comparison_view.ComparisonView`; the panel computes
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QAction, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .explain_panel import section_label
from .files import WEIGHTS_FILTER
from .model_cards import CARD_FILTER, confirmed_card
from .model_panel import ModelPanel
from .score_chart import ScoreChart

if TYPE_CHECKING:
    from .document import Document
    from .document.comparison import ComparisonState
    from .document.comparison_view import ComparisonView, ScoresView
    from .settings import Preferences

NAME_ROLE = Qt.ItemDataRole.UserRole + 1


def _muted(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


class ComparePanel(QWidget):
    """Model B, the memory, the per-class table, both score charts, Close."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("comparePanel")
        self._comparison: ComparisonState | None = None
        self._signature: object = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(6)
        self.title = QLabel("", self)
        self.title.setObjectName("compareTitle")
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        layout.addWidget(section_label("Model B", self))
        self.model_panel = ModelPanel(self)  # the Model panel's choosers, bound to B
        self.model_panel.setObjectName("compareModelPanel")
        self.model_panel.show_device_choices(False)  # B runs on A's device, as A runs
        layout.addWidget(self.model_panel)
        row = QHBoxLayout()
        self.card_button = QPushButton("Model Card...", self)
        self.card_button.setObjectName("compareCardButton")
        self.card_button.setToolTip("Compare with a model card (a .toml file)")
        row.addWidget(self.card_button)
        row.addStretch(1)
        self.close_button = QPushButton("Close Comparison", self)
        self.close_button.setObjectName("closeComparisonButton")
        self.close_button.setToolTip("Back to one model (B leaves the device)")
        row.addWidget(self.close_button)
        layout.addLayout(row)
        self.memory = _muted("", self)
        self.memory.setObjectName("compareMemory")
        self.memory.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.memory)
        self.status = QLabel("", self)
        self.status.setObjectName("compareStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        layout.addWidget(section_label("Per class, most changed first", self))
        self.table = QTableWidget(0, 5, self)
        self.table.setObjectName("compareTable")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setMinimumHeight(120)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.setToolTip("Share: pixels of the class in each model. IoU: overlap of the "
                              "two masks. Score: the class score each model's explanation "
                              "explains. rho: Spearman's correlation of the two maps over "
                              "the union of the masks.")
        layout.addWidget(self.table, 1)
        self.changed = _muted("", self)
        self.changed.setObjectName("compareChanged")
        layout.addWidget(self.changed)

        layout.addWidget(section_label("Ablated in both models", self))
        self.ablation_status = _muted("", self)
        self.ablation_status.setObjectName("compareAblationStatus")
        layout.addWidget(self.ablation_status)
        self.charts: list[ScoreChart] = []
        self.chart_titles: list[QLabel] = []
        for name in ("A", "B"):
            title = QLabel("", self)
            title.setObjectName(f"compareChartTitle{name}")
            title.setWordWrap(True)
            chart = ScoreChart(self)
            chart.setObjectName(f"compareChart{name}")
            layout.addWidget(title)
            layout.addWidget(chart)
            self.chart_titles.append(title)
            self.charts.append(chart)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)

    # -- binding -----------------------------------------------------------------------
    def bind(self, comparison: ComparisonState, browse_weights: Callable[[], None],
             choose_card: Callable[[], None]) -> None:
        """B's choosers edit ``comparison.model``; a table row picks the class shown."""
        self._comparison = comparison
        self.model_panel.bind(comparison.model, browse_weights)
        self.card_button.clicked.connect(lambda *_: choose_card())
        self.close_button.clicked.connect(lambda *_: comparison.close())
        self.table.itemSelectionChanged.connect(self._on_row)

    def _on_row(self) -> None:
        items = self.table.selectedItems()
        if items and self._comparison is not None:
            self._comparison.pick(str(items[0].data(NAME_ROLE)))

    # -- showing the view ----------------------------------------------------------------
    def apply(self, view: ComparisonView) -> None:
        self.model_panel.apply(view.model)
        if view.signature == self._signature:
            return
        self._signature = view.signature
        self.close_button.setEnabled(view.can_close)
        self.title.setText(view.title)
        self.memory.setText(view.memory)
        self.memory.setVisible(bool(view.memory))
        self.status.setText(view.status)
        self.status.setStyleSheet("color: #b3261e;" if view.refused else "")
        self.changed.setText(view.changed)
        self._show_table(view)
        self.ablation_status.setText(view.ablation_status)
        for i, chart in enumerate(self.charts):
            scores = view.scores[i] if view.scores is not None else None
            self._show_scores(chart, self.chart_titles[i], scores)

    def _show_table(self, view: ComparisonView) -> None:
        table = self.table
        with QSignalBlocker(table):
            table.setHorizontalHeaderLabels(list(view.headers))
            table.setRowCount(len(view.rows))
            for r, row in enumerate(view.rows):
                for c, text in enumerate((row.name, *row.cells)):
                    item = QTableWidgetItem(text)
                    item.setData(NAME_ROLE, row.name)
                    item.setToolTip(row.tip)
                    if c:
                        item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                              | Qt.AlignmentFlag.AlignVCenter)
                    table.setItem(r, c, item)
            table.clearSelection()
            if view.current is not None:
                table.selectRow(view.current)
                first = table.item(view.current, 0)
                if first is not None:
                    table.scrollToItem(first)

    @staticmethod
    def _show_scores(chart: ScoreChart, title: QLabel, scores: ScoresView | None) -> None:
        title.setVisible(scores is not None)
        chart.setVisible(scores is not None)
        if scores is None:
            chart.clear()
            return
        title.setText(f"<b>{scores.title}</b><br>{scores.summary}")
        if scores.before is None or scores.after is None:
            chart.clear(scores.summary)
        else:
            chart.set_scores(scores.categories, scores.colors, scores.before, scores.after,
                             scores.emphasis)

    # -- what tests and scripts read -----------------------------------------------------
    def rows(self) -> list[list[str]]:
        """The table's text, top to bottom."""
        def text(r: int, c: int) -> str:
            item = self.table.item(r, c)
            return item.text() if item is not None else ""

        return [[text(r, c) for c in range(self.table.columnCount())]
                for r in range(self.table.rowCount())]


class CompareCommands:
    """Model > Compare With..., Compare With Model Card..., Close Comparison; B's weights
    file and card dialogs (a card that runs code is asked about first, as A's)."""

    def __init__(self, window: QMainWindow, doc: Document, prefs: Preferences,
                 show_error: Callable[[str], None], status: Callable[[str], None],
                 ask: Callable[[str, str], bool], show_panel: Callable[[], None]) -> None:
        self.window, self.doc, self.prefs = window, doc, prefs
        self.show_error, self.status, self.ask = show_error, status, ask
        self.show_panel = show_panel
        self.compare_action = QAction("Compare &With...", window)
        self.compare_action.setStatusTip("Load a second model beside this one and compare "
                                         "their segmentations and explanations")
        self.compare_action.triggered.connect(lambda *_: self.compare())
        self.card_action = QAction("Compare With Model Car&d...", window)
        self.card_action.setStatusTip("Compare with a model card (a .toml file)")
        self.card_action.triggered.connect(lambda *_: self.choose_card())
        self.close_action = QAction("C&lose Comparison", window)
        self.close_action.setStatusTip("Back to one model")
        self.close_action.triggered.connect(lambda *_: doc.comparison.close())
        doc.comparison.changed.connect(
            lambda change: self.close_action.setEnabled(doc.comparison.active)
            if "active" in change.fields else None)
        self.close_action.setEnabled(doc.comparison.active)

    def attach(self, menu: object) -> None:
        """Add the commands to the Model menu (a QMenu)."""
        menu.addSeparator()  # type: ignore[attr-defined]
        for action in (self.compare_action, self.card_action, self.close_action):
            menu.addAction(action)  # type: ignore[attr-defined]

    def compare(self) -> None:
        """Open the comparison (B: the model chosen before, or A's to start from)."""
        self.doc.comparison.open()
        self.show_panel()

    def choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Model B's weights file",
                                              self.prefs.last_folder, WEIGHTS_FILTER)
        if path:
            self.doc.comparison.model.weights = path

    def choose_card(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Compare with a model card",
                                              self.prefs.last_folder, CARD_FILTER)
        if path:
            self.open_card(path)

    def accept_card(self, path: str) -> bool:
        """Whether B may be the model card at ``path``: it reads (else one line), and a
        card that runs code is asked about first."""
        return confirmed_card(path, self.show_error, self.ask, self.status) is not None

    def open_card(self, path: str) -> bool:
        """Compare with the model card at ``path`` (its own working size)."""
        card = confirmed_card(path, self.show_error, self.ask, self.status)
        if card is None:
            return False
        resolved = str(Path(card.path).resolve())
        comparison = self.doc.comparison
        base = comparison.model.choice if comparison.active else self.doc.model.choice
        choice = replace(base, architecture=resolved, weights="default",
                         size=card.size or base.size)
        comparison.open(choice)
        self.show_panel()
        self.status(f"Comparing with model card {card.name}")
        return True
