"""The classes panel: every predicted class, its colour, name and share of pixels; a click
makes one the target (the view state's ``target``). A multi-label model's classes each
have a check box that shows or hides the class on the image (the layers state's
``hidden_classes``), and a line says what the shares add up to and how many pixels are
in no class."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QStyle,
    QStyledItemDelegate,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .document.formatting import format_share
from .imaging import swatch

if TYPE_CHECKING:
    from ..engine.results import Prediction
    from .document.explain_view import ClassesView
    from .document.states import LayersState, ViewState

CLASS_ROLE = Qt.ItemDataRole.UserRole
SHARE_ROLE = Qt.ItemDataRole.UserRole + 1


class _ShareDelegate(QStyledItemDelegate):
    """Draws the share of pixels as a bar behind its percentage."""

    def paint(self, painter, option, index) -> None:
        share = index.data(SHARE_ROLE)
        if share is None:
            super().paint(painter, option, index)
            return
        painter.save()
        style = option.widget.style() if option.widget else None
        if style is not None:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter,
                                option.widget)
        rect = option.rect.adjusted(4, 4, -4, -4)
        highlight = option.palette.color(QPalette.ColorRole.Highlight)
        bar = QColor(highlight)
        bar.setAlpha(90)
        filled = QRect(rect.left(), rect.top(), max(1, round(rect.width() * float(share))),
                       rect.height())
        painter.fillRect(filled, bar)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.setPen(option.palette.color(role))
        painter.drawText(rect.adjusted(0, 0, -2, 0),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                         index.data(Qt.ItemDataRole.DisplayRole))
        painter.restore()

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        size = super().sizeHint(option, index)
        return QSize(max(size.width(), 52), size.height())


class ClassesPanel(QWidget):
    """Lists the predicted classes, largest first; clicking one makes it the target."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._view_state: ViewState | None = None
        self._layers: LayersState | None = None
        self._toggles = False
        self._hidden: frozenset[int] = frozenset()
        self._prediction: Prediction | None = None
        self._target: int | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("classesTree")
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Class", "Pixels"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setIconSize(QSize(14, 14))
        self.tree.setItemDelegateForColumn(1, _ShareDelegate(self.tree))
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(1, 58)  # "94.8 %": the names keep the rest
        self.tree.itemSelectionChanged.connect(self._on_selection_changed)
        self.tree.itemChanged.connect(self._on_item_changed)
        self.hint = QLabel("Classes appear here once the model has run.", self)
        self.hint.setWordWrap(True)
        self.hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.hint)

    # -- binding and content -------------------------------------------------------------
    def bind(self, view: ViewState, layers: LayersState | None = None) -> None:
        """A click on a class sets ``view.target``; a multi-label class's check box shows
        or hides it (``layers``)."""
        self._view_state = view
        self._layers = layers

    def apply(self, view: ClassesView) -> None:
        rebuild = view.toggles != self._toggles
        self._toggles, self._hidden = view.toggles, view.hidden
        if rebuild:
            self._prediction = None  # listed again, with or without check boxes
        self.show_prediction(view.classes, view.target, view.colors)
        self._show_hidden()
        if view.note and view.classes is not None:
            n = len(view.classes.present_classes)
            self.hint.setText(f"{n} class{'es' if n != 1 else ''} predicted. {view.note} "
                              "Uncheck a class to hide it on the image; click one, or the "
                              "image, to explain it.")

    def show_prediction(self, prediction: Prediction | None, target: int | None,
                        colors) -> None:
        """List ``prediction``'s classes (rebuilt only for a new one) and select ``target``."""
        if prediction is not self._prediction:
            self.set_prediction(prediction, colors)
        if target != self._target:
            self.set_target(target)

    def set_prediction(self, prediction: Prediction | None, colors) -> None:
        """``colors``: the model's class colours (n x 3), indexed by class."""
        self._prediction = prediction
        self.tree.blockSignals(True)
        self.tree.clear()
        if prediction is not None:
            counts = prediction.pixel_counts
            total = prediction.class_map.size
            for cls in prediction.present_classes:
                share = counts[cls] / total
                item = QTreeWidgetItem([prediction.categories[cls], format_share(share)])
                item.setIcon(0, swatch(colors[cls]))
                item.setData(0, CLASS_ROLE, int(cls))
                item.setData(1, SHARE_ROLE, float(share))
                item.setToolTip(0, f"class {cls}: {prediction.categories[cls]}\n"
                                   f"{int(counts[cls]):,} pixels ({format_share(share)})")
                item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight)
                if self._toggles:  # a multi-label class: shown or hidden on the image
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                    item.setCheckState(0, Qt.CheckState.Checked)
                    item.setToolTip(0, item.toolTip(0) + "\nUncheck to hide it on the image")
                self.tree.addTopLevelItem(item)
            n = len(prediction.present_classes)
            self.hint.setText(f"{n} class{'es' if n != 1 else ''} predicted. Click one, or "
                              "click the image, to explain it.")
        else:
            self.hint.setText("Classes appear here once the model has run.")
        self.tree.blockSignals(False)
        self._select(self._target)

    def set_target(self, cls: int | None) -> None:
        self._target = cls
        self._select(cls)

    def target(self) -> int | None:
        return self._target

    def listed_classes(self) -> list[int]:
        items = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [item.data(0, CLASS_ROLE) for item in items if item is not None]

    def is_shown(self, cls: int) -> bool:
        """Whether a multi-label class's check box is checked (True without one)."""
        item = self.item_for(cls)
        return item is None or not self._toggles \
            or item.checkState(0) == Qt.CheckState.Checked

    def item_for(self, cls: int) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is not None and item.data(0, CLASS_ROLE) == cls:
                return item
        return None

    # -- internals --------------------------------------------------------------------------
    def _show_hidden(self) -> None:
        if not self._toggles:
            return
        self.tree.blockSignals(True)
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item is not None:
                hidden = int(item.data(0, CLASS_ROLE)) in self._hidden
                item.setCheckState(0, Qt.CheckState.Unchecked if hidden
                                   else Qt.CheckState.Checked)
        self.tree.blockSignals(False)

    def _on_item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column != 0 or not self._toggles or self._layers is None:
            return
        cls = int(item.data(0, CLASS_ROLE))
        shown = item.checkState(0) == Qt.CheckState.Checked
        if shown == (cls in self._hidden):
            self._layers.set_class_visible(cls, shown)

    def _select(self, cls: int | None) -> None:
        self.tree.blockSignals(True)
        self.tree.clearSelection()
        item = self.item_for(cls) if cls is not None else None
        if item is not None:
            item.setSelected(True)
            self.tree.setCurrentItem(item)
            self.tree.scrollToItem(item)
        self.tree.blockSignals(False)

    def _on_selection_changed(self) -> None:
        items = self.tree.selectedItems()
        if not items:
            self._select(self._target)  # a target stays chosen: re-select it
            return
        cls = int(items[0].data(0, CLASS_ROLE))
        if cls != self._target:
            self._target = cls
            if self._view_state is not None:
                self._view_state.target = cls

