"""The Shapley section of the explanation panel: each segment's value, the top pairs."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .document.explain_view import ShapleyView
from .document.formatting import format_value


def _table(parent: QWidget, name: str, headers: tuple[str, str]) -> QTableWidget:
    table = QTableWidget(0, 2, parent)
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(list(headers))
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    # as wide as the panel, never wider (the panel scrolls vertically only)
    table.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    header = table.horizontalHeader()
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
    return table


class ShapleyPanel(QWidget):
    """Shows a :class:`ShapleyView`: hidden when there is none."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.heading = QLabel(self)
        self.heading.setObjectName("shapleyHeading")
        self.heading.setWordWrap(True)
        layout.addWidget(self.heading)
        self.values = _table(self, "shapleyValues", ("Segment", "Shapley value"))
        layout.addWidget(self.values)
        self.pairs_label = QLabel("Top interacting pairs", self)
        layout.addWidget(self.pairs_label)
        self.pairs = _table(self, "shapleyPairs", ("Segments", "Interaction"))
        layout.addWidget(self.pairs)
        self.note = QLabel(self)
        self.note.setObjectName("shapleyNote")
        self.note.setWordWrap(True)
        self.note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(self.note)
        self._shown: ShapleyView | None = None
        self.setVisible(False)

    def apply(self, view: ShapleyView | None) -> None:
        if view == self._shown:
            return
        self._shown = view
        self.setVisible(view is not None)
        if view is None:
            return
        self.heading.setText(view.heading)
        self._fill(self.values, view.values, 6)
        self._fill(self.pairs, view.pairs, 4)
        self.pairs_label.setVisible(bool(view.pairs))
        self.pairs.setVisible(bool(view.pairs))
        self.note.setText(view.pairs_note)

    @staticmethod
    def _fill(table: QTableWidget, rows: tuple[tuple[str, float], ...], shown: int) -> None:
        """The rows, and a height that shows ``shown`` of them (the rest scroll)."""
        table.setRowCount(len(rows))
        for r, (name, value) in enumerate(rows):
            table.setItem(r, 0, QTableWidgetItem(name))
            item = QTableWidgetItem(format_value(value))
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            table.setItem(r, 1, item)
        visible = min(len(rows), shown)
        height = table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
        height += visible * table.verticalHeader().defaultSectionSize()
        table.setFixedHeight(height + 2)
