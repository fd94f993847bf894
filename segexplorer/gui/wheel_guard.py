"""The mouse wheel scrolls a panel; it changes a value only in the field the user is in.

Qt gives drop-downs, spin boxes and sliders the wheel even when the pointer merely
passes over them while the panel is being scrolled (their focus policy is
``Qt.WheelFocus``: the wheel even takes the focus), so scrolling the Evaluate panel
could switch its Curves to "All four" under the pointer. :class:`WheelGuard`, an
application-wide event filter, changes that for every window: such a widget takes the
focus only by click or Tab (``Qt.StrongFocus``), and a wheel event over it while it does
not have the focus goes to the scroll bar of the nearest scroll area around it that can
scroll that way (the panel scrolls), or nowhere. Scroll bars keep their wheel, and the
image canvas its zoom.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QScrollBar,
    QWidget,
)

#: the widgets whose value the wheel changes
VALUE_WIDGETS = (QComboBox, QAbstractSpinBox, QAbstractSlider)


def guarded(widget: QObject) -> bool:
    """Whether the wheel over ``widget`` must not change its value unless it has the
    focus (a scroll bar is what the wheel is for)."""
    return isinstance(widget, VALUE_WIDGETS) and not isinstance(widget, QScrollBar)


class WheelGuard(QObject):
    """The application's event filter (:func:`install`)."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        kind = event.type()
        if kind == QEvent.Type.Polish and guarded(watched):
            assert isinstance(watched, QWidget)
            if watched.focusPolicy() == Qt.FocusPolicy.WheelFocus:
                watched.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        elif kind == QEvent.Type.Wheel and guarded(watched):
            assert isinstance(watched, QWidget)
            if not watched.hasFocus():
                assert isinstance(event, QWheelEvent)
                bar = scroll_bar_around(watched, vertical=event.angleDelta().y() != 0)
                if bar is not None:
                    QApplication.sendEvent(bar, event.clone())
                event.accept()  # handled: Qt offers it to no parent after this
                return True
        return False


def scroll_bar_around(widget: QWidget, vertical: bool) -> QScrollBar | None:
    """The scroll bar of the nearest scroll area around ``widget`` that can scroll that
    way (a table inside a panel that cannot scroll leaves it to the panel)."""
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            bar = parent.verticalScrollBar() if vertical else parent.horizontalScrollBar()
            if bar.maximum() > bar.minimum():
                return bar
        parent = parent.parentWidget()
    return None


def install(app: QApplication) -> WheelGuard:
    """Install the guard on ``app`` once (later calls return the same guard)."""
    existing = app.findChild(WheelGuard)
    if existing is not None:
        return existing
    guard = WheelGuard(app)
    app.installEventFilter(guard)
    return guard
