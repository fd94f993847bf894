"""Widgets bound to one field of a document state each (glue's ``autoconnect``, napari's
``events.<field>.connect``): the widget edits the field, and shows it again whenever the
field changes, whoever changed it. Nothing here remembers a choice: the state does.

Lists of labelled values are superqt's :class:`QEnumComboBox` over an enum made from the
document's labels (:func:`label_enum`); each item also carries its value as item data,
so ``findData`` / ``currentData`` work as on any combo box.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QAbstractButton, QAbstractSpinBox, QComboBox, QWidget
from superqt import QEnumComboBox
from superqt.utils import qdebounced

from .document.events import Change, State


class LabelledValue(Enum):
    """A document value (``.value``) shown by its label (``str``)."""

    def __str__(self) -> str:
        return str(type(self).__dict__["_labels"][self.value])


def label_enum(name: str, labels: Mapping[str, str]) -> type[LabelledValue]:
    """An enum of ``labels``' values, in order, each shown by its label."""
    members = [(f"value{i}", value) for i, value in enumerate(labels)]
    enum: Any = LabelledValue(name, members)  # type: ignore[call-arg]
    enum._labels = dict(labels)
    result: type[LabelledValue] = enum
    return result


def enum_combo(parent: QWidget | None, labels: Mapping[str, str], name: str
               ) -> QEnumComboBox:
    """A combo box of ``labels`` (value -> label), named ``name`` (tests find it)."""
    combo = QEnumComboBox(parent, label_enum(name, labels))
    combo.setObjectName(name)
    for i, value in enumerate(labels):
        combo.setItemData(i, value)  # the value as item data too
    return combo


def relabel(combo: QEnumComboBox, labels: Iterable[tuple[str, str]]) -> None:
    """Show other labels for ``combo``'s values (a model's own words: a multi-label
    model's segments are label sets); the enum's labels follow, so ``currentEnum``
    still finds the current item."""
    wanted = {value: label for value, label in labels}
    enum = combo.enumClass()
    if enum is not None:
        enum.__dict__["_labels"].update(
            {k: v for k, v in wanted.items() if k in enum.__dict__["_labels"]})
    for i in range(combo.count()):
        label = wanted.get(combo.itemData(i))
        if label is not None and combo.itemText(i) != label:
            combo.setItemText(i, label)


def on_fields(state: State, names: str | Iterable[str], show: Callable[[], object],
              now: bool = True) -> None:
    """Call ``show()`` (now, and) whenever one of the fields ``names`` changes."""
    wanted = frozenset([names] if isinstance(names, str) else names)

    def changed(change: Change) -> None:
        if change.fields & wanted:
            show()

    state.changed.connect(changed)
    if now:
        show()


def select_value(combo: QComboBox, value: object) -> bool:
    """Show ``value`` in ``combo`` without announcing it (False: not listed)."""
    index = combo.findData(value)
    if index >= 0 and index != combo.currentIndex():
        with QSignalBlocker(combo):
            combo.setCurrentIndex(index)
    return index >= 0


def bind_combo(combo: QComboBox, state: State, name: str) -> None:
    """``combo`` (items with data) edits and shows ``state.<name>``."""
    combo.currentIndexChanged.connect(
        lambda _i: setattr(state, name, combo.currentData()))
    on_fields(state, name, lambda: select_value(combo, getattr(state, name)))


def bind_check(box: QAbstractButton, state: State, name: str) -> None:
    """A check box edits and shows the boolean ``state.<name>``."""
    box.toggled.connect(lambda on: setattr(state, name, bool(on)))

    def show() -> None:
        with QSignalBlocker(box):
            box.setChecked(bool(getattr(state, name)))

    on_fields(state, name, show)


def bind_spin(spin: QAbstractSpinBox, state: State, name: str,
              edit: Callable[[Any], None] | None = None, debounce_ms: int = 0) -> Any:
    """A spin box edits ``state.<name>`` (through ``edit`` when given) and shows it.
    ``debounce_ms``: typing or key repeat edits once it pauses (superqt's debouncer; the
    end of editing edits at once). Returns the debounced editor, if any."""
    def write() -> None:
        value = spin.value()  # type: ignore[attr-defined]
        if edit is not None:
            edit(value)
        else:
            setattr(state, name, value)

    if debounce_ms:
        debounced = qdebounced(write, timeout=debounce_ms, parent=spin)
        spin.valueChanged.connect(lambda _v: debounced())  # type: ignore[attr-defined]
        spin.editingFinished.connect(lambda: debounced.flush(restart_timer=False))
    else:
        debounced = None
        spin.valueChanged.connect(lambda _v: write())  # type: ignore[attr-defined]

    def show() -> None:
        if debounced is not None:
            debounced.cancel()
        with QSignalBlocker(spin):
            spin.setValue(getattr(state, name))  # type: ignore[attr-defined]

    on_fields(state, name, show)
    return debounced


def set_item_tooltips(combo: QComboBox, tips: Mapping[str, str]) -> None:
    for i in range(combo.count()):
        tip = tips.get(str(combo.itemData(i)))
        if tip:
            combo.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
