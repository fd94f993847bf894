"""Windows that fit their screen: a size asked for is bounded by the screen's available
area (the desktop less its panels and docks), frame included, and the window is placed
inside that area.

A window's frame (title bar, borders) is the window manager's and unknown until the
window is shown, so a window sized before its first show keeps :data:`FRAME_ALLOWANCE`
free for it (more than the usual title bar and borders on Linux, Windows and macOS);
:func:`keep_on_screen` corrects a shown window with its real frame.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

#: room left for the window manager's frame around a window not shown yet (width, height)
FRAME_ALLOWANCE = QSize(16, 48)


def available_area(widget: QWidget) -> QRect | None:
    """The available geometry of the screen ``widget`` is on (or the primary screen's)."""
    screen = widget.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else None


def _frame_margins(widget: QWidget) -> QSize:
    """What the window manager adds around ``widget``: its real frame once it has been
    shown, :data:`FRAME_ALLOWANCE` before."""
    frame, inner = widget.frameGeometry(), widget.geometry()
    extra = QSize(frame.width() - inner.width(), frame.height() - inner.height())
    if widget.isVisible() and (extra.width() > 0 or extra.height() > 0):
        return extra
    return FRAME_ALLOWANCE


def fitted_size(widget: QWidget, width: int, height: int) -> QSize:
    """``width`` x ``height`` bounded by the available area less the frame, and by the
    window's minimum size from below (a screen smaller than that cannot be helped)."""
    area = available_area(widget)
    wanted = QSize(width, height)
    if area is None:
        return wanted
    margins = _frame_margins(widget)
    room = QSize(area.width() - margins.width(), area.height() - margins.height())
    return wanted.boundedTo(room).expandedTo(widget.minimumSize())


def fit_to_screen(widget: QWidget, width: int, height: int, center: bool = True) -> None:
    """Size a top-level window to ``width`` x ``height`` or less, so that it fits the
    available area of its screen, frame included; centred there (``center``) or moved
    just enough to be inside it."""
    size = fitted_size(widget, width, height)
    widget.resize(size)
    area = available_area(widget)
    if area is None:
        return
    margins = _frame_margins(widget)
    outer = QSize(size.width() + margins.width(), size.height() + margins.height())
    if center:
        x = area.x() + max(0, (area.width() - outer.width()) // 2)
        y = area.y() + max(0, (area.height() - outer.height()) // 2)
    else:
        x = min(max(widget.x(), area.x()), area.x() + max(0, area.width() - outer.width()))
        y = min(max(widget.y(), area.y()), area.y() + max(0, area.height() - outer.height()))
    widget.move(x, y)


def keep_on_screen(widget: QWidget) -> None:
    """Shrink and move a window (a restored geometry, a screen that changed) so that
    all of it, frame included, lies in its screen's available area."""
    area = available_area(widget)
    if area is None:
        return
    frame = widget.frameGeometry()
    if area.contains(frame):
        return
    fit_to_screen(widget, widget.width(), widget.height(), center=False)


#: a drop-down in a side panel is at least this many characters wide; a longer item is
#: elided in the box (the list shows it whole) instead of widening the panel
COMBO_MIN_CHARACTERS = 10


def narrow_combos(panel: QWidget) -> None:
    """Let the drop-downs of a side panel shrink to the dock's width: their width no
    longer follows their longest item, which widened the Explanation panel past a
    1024 px screen's dock and hid its buttons behind a horizontal scroll bar."""
    from PySide6.QtWidgets import QComboBox

    for combo in panel.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(COMBO_MIN_CHARACTERS)
