"""Choosing a layer from the model's module tree, with what the engine says of each one.

The shapes and notes come from the engine's audit (``engine.layers.audit_layers``: the
output of each layer's last call, how often it is called, why it cannot be explained);
a layer the engine refuses is greyed with its reason, and choosing it is refused by the
document in one line before any work.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QPalette
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from .document.formatting import format_shape
from .screen_fit import fitted_size

PATH_ROLE = Qt.ItemDataRole.UserRole
__all__ = ["LayerPicker", "format_shape"]


class LayerPicker(QDialog):
    """A tree of ``(dotted path, type)`` rows; shapes arrive later (they need a forward pass)."""

    layer_chosen = Signal(str)

    def __init__(self, layers: list[tuple[str, str]], current: str, default: str,
                 parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a layer")
        self.setObjectName("layerPicker")
        self.resize(fitted_size(self, 620, 560))
        self._default = default
        self._unusable: dict[str, str] = {}
        layout = QVBoxLayout(self)
        self.info = QLabel(
            "Grad-CAM attributes to a layer's output. The usual choice is the last "
            f"convolution of the backbone (default: <b>{default}</b>). Output shapes are "
            "N x C x H x W at the current working size.", self)
        self.info.setWordWrap(True)
        layout.addWidget(self.info)
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter layers (e.g. conv, layer4)")
        self.filter.setClearButtonEnabled(True)
        layout.addWidget(self.filter)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("layerTree")
        self.tree.setHeaderLabels(["Layer", "Type", "Output shape", "Note"])
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        layout.addWidget(self.tree, 1)
        self.shapes_status = QLabel("Computing output shapes...", self)
        layout.addWidget(self.shapes_status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel, self)
        self.reset = buttons.addButton("Default layer", QDialogButtonBox.ButtonRole.ResetRole)
        buttons.accepted.connect(self.accept_selected)
        buttons.rejected.connect(self.reject)
        self.reset.clicked.connect(lambda: self.select(self._default))
        layout.addWidget(buttons)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._build(layers)
        self.tree.itemDoubleClicked.connect(lambda *_: self.accept_selected())
        self.filter.textChanged.connect(self._apply_filter)
        self.select(current or default)

    def _build(self, layers: list[tuple[str, str]]) -> None:
        bold = QFont(self.font())
        bold.setBold(True)
        for path, kind in layers:
            parent_path, _, name = path.rpartition(".")
            parent = self._items.get(parent_path)
            item = QTreeWidgetItem([name, kind, "", ""])
            item.setData(0, PATH_ROLE, path)
            item.setToolTip(0, path)
            if path == self._default:
                item.setText(0, f"{name}  (default)")
                item.setFont(0, bold)
            if parent is None:
                self.tree.addTopLevelItem(item)
            else:
                parent.addChild(item)
            self._items[path] = item

    def set_shapes(self, shapes: dict[str, tuple[int, ...]]) -> None:
        for path, item in self._items.items():
            item.setText(2, format_shape(shapes.get(path)))
        self.shapes_status.setText("Layers without a shape are not tensors or are not run.")

    def set_audit(self, infos: list) -> None:
        """The engine's ``LayerInfo`` per layer: the last call's shape, and a note (reuse,
        or why it cannot be explained: such a layer is greyed)."""
        muted = self.palette().color(QPalette.ColorRole.PlaceholderText)
        self._unusable = {}
        for info in infos:
            item = self._items.get(info.path)
            if item is None:
                continue
            item.setText(2, format_shape(info.shape))
            item.setText(3, info.note)
            item.setToolTip(3, info.note)
            if not info.usable:
                self._unusable[info.path] = info.reason
                for column in range(4):
                    item.setForeground(column, muted)
        self.shapes_status.setText("Shapes are each layer's last call (as Captum uses it); "
                                   "greyed layers cannot be explained (see their note).")

    def note_text(self, path: str) -> str:
        item = self._items.get(path)
        return item.text(3) if item is not None else ""

    def is_usable(self, path: str) -> bool:
        return path not in self._unusable

    def set_shapes_error(self, message: str) -> None:
        self.shapes_status.setText(f"Output shapes unavailable: {message}")

    def select(self, path: str) -> None:
        item = self._items.get(path)
        if item is None:
            return
        self.tree.setCurrentItem(item)
        self.tree.scrollToItem(item)

    def selected_path(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, PATH_ROLE) if item is not None else None

    def shape_text(self, path: str) -> str:
        item = self._items.get(path)
        return item.text(2) if item is not None else ""

    def accept_selected(self) -> None:
        """Choose the selected layer and close (OK, double click)."""
        path = self.selected_path()
        if path:
            self.layer_chosen.emit(path)
        self.accept()

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        visible: set[str] = set()
        for path, item in self._items.items():
            if not needle or needle in path.lower() or needle in item.text(1).lower():
                parts = path.split(".")
                # keep the ancestors of a match visible
                visible.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        for path, item in self._items.items():
            shown = path in visible
            item.setHidden(not shown)
            if needle and shown:
                item.setExpanded(True)
