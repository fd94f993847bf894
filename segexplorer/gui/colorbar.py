"""A horizontal colour bar labelled in real attribution units (Captum's colour maps)."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QFontMetrics, QImage, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..render import colorbar_rgba, colorbar_ticks
from ..render.normalize import NormalizedAttr
from .document.formatting import format_value
from .document.labels import LegendEntry
from .imaging import to_qimage

__all__ = ["ClassLegend", "ColorBar", "draw_colorbar", "format_value"]


class ColorBar(QWidget):
    """Gradient strip, ticks at evenly spaced values, and a caption with the units."""

    def __init__(self, parent=None, compact: bool = False) -> None:
        super().__init__(parent)
        self._compact = compact
        self._normalized: NormalizedAttr | None = None
        self._caption = ""
        self._strip: QImage | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.sizeHint().height())

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(200, colorbar_height(self.font(), self._compact))

    def set_attribution(self, normalized: NormalizedAttr | None, caption: str = "",
                        cmap: str | None = None) -> None:
        self._normalized = normalized
        self._caption = caption
        self._strip = (to_qimage(colorbar_rgba(normalized.sign, 256, 1, cmap=cmap))
                       if normalized is not None else None)
        self.setToolTip(caption)
        self.update()

    def ticks(self) -> list[tuple[float, float]]:
        """(position 0..1, attribution value) pairs currently drawn."""
        if self._normalized is None or self._normalized.scale == 0:
            return []
        return colorbar_ticks(self._normalized, 3 if self._compact else 5)

    def tick_labels(self) -> list[str]:
        return [format_value(v) for _, v in self.ticks()]

    def paintEvent(self, event) -> None:  # noqa: N802
        if self._normalized is None:
            return
        painter = QPainter(self)
        draw_colorbar(painter, self.rect(), self._normalized, self.palette(),
                      caption="" if self._compact else self._caption, compact=self._compact,
                      strip=self._strip, ticks=self.ticks())
        painter.end()


def draw_colorbar(painter: QPainter, rect: QRect, normalized: NormalizedAttr,
                  palette: QPalette, *, caption: str = "", compact: bool = False,
                  strip=None, ticks: list[tuple[float, float]] | None = None,
                  cmap: str | None = None) -> None:
    """Paint a colour bar into ``rect``: strip, ticks and labels, then the caption."""
    fm = QFontMetrics(painter.font())
    margin = max(fm.horizontalAdvance("-0.00e-00") // 2, 12)
    strip_h = 8 if compact else 12
    bar = QRect(rect.left() + margin, rect.top() + 2, max(10, rect.width() - 2 * margin),
                strip_h)
    if normalized.scale == 0:
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter,
                         f"No {normalized.sign.replace('_', ' ')} attribution here")
        return
    if strip is None:
        strip = to_qimage(colorbar_rgba(normalized.sign, 256, 1, cmap=cmap))
    painter.drawImage(bar, strip)
    painter.setPen(palette.color(QPalette.ColorRole.WindowText))
    painter.drawRect(bar.adjusted(0, 0, -1, -1))
    y_text = bar.bottom() + 4
    if ticks is None:
        ticks = colorbar_ticks(normalized, 3 if compact else 5)
    for pos, value in ticks:
        x = bar.left() + round(pos * (bar.width() - 1))
        painter.drawLine(x, bar.bottom(), x, bar.bottom() + 3)
        label = format_value(value)
        w = fm.horizontalAdvance(label)
        painter.drawText(QRect(x - w // 2 - 2, y_text, w + 4, fm.height()),
                         Qt.AlignmentFlag.AlignCenter, label)
    if caption and not compact:
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        text = fm.elidedText(caption, Qt.TextElideMode.ElideRight, rect.width() - 8)
        painter.drawText(QRect(rect.left() + 4, y_text + fm.height() + 2, rect.width() - 8,
                               fm.height()), Qt.AlignmentFlag.AlignCenter, text)


def colorbar_height(font, compact: bool) -> int:
    fm = QFontMetrics(font)
    return (8 if compact else 12) + 6 + (1 if compact else 2) * (fm.height() + 2) + 4


class ClassLegend(QWidget):
    """A row of colour chips with class names (the segmentation layer's legend).

    For a multi-label model each entry also shows the class's share of the pixels, a
    click on it shows or hides the class (``class_toggled``; a hidden class's chip is
    hollow and its name greyed), and the last entry is the pixels in no class."""

    class_toggled = Signal(int)  # the class whose entry was clicked

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._entries: list[LegendEntry] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)

    def set_entries(self, entries: Sequence[LegendEntry | tuple[str, tuple[int, int, int]]]
                    ) -> None:
        self._entries = [e if isinstance(e, LegendEntry) else LegendEntry(*e) for e in entries]
        tip = ", ".join(f"{e.name} {e.share}".strip() + ("" if e.shown else " (hidden)")
                        for e in self._entries)
        if any(e.cls is not None for e in self._entries):
            tip += ("\nClick a class to show or hide it. Shares are each class's own "
                    "pixels: classes may overlap, so they may add up to more than 100 %.")
        self.setToolTip(tip)
        self.update()

    def entries(self) -> list[tuple[str, tuple[int, int, int]]]:
        """(name, colour) of each entry."""
        return [(e.name, e.rgb) for e in self._entries]

    def items(self) -> list[LegendEntry]:
        """Each entry in full: its share, class and whether it is shown."""
        return list(self._entries)

    @staticmethod
    def _text(entry: LegendEntry) -> str:
        return f"{entry.name} {entry.share}" if entry.share else entry.name

    def _widths(self) -> list[int]:
        fm = QFontMetrics(self.font())
        chip = fm.height() - 2
        return [chip + 6 + fm.horizontalAdvance(self._text(e)) + 16 for e in self._entries]

    def _layout(self) -> tuple[list[QRect], QPoint | None]:
        """Where each entry drawn whole goes, in as many rows as the footer holds, and
        where '+N more' goes when some do not fit (no name is ever cut off)."""
        fm = QFontMetrics(self.font())
        row_h = fm.height() + 4
        rows = max(1, (self.height() - 4) // row_h)
        room = self.width() - 16
        widths = self._widths()

        def place(reserve: bool) -> list[tuple[int, int]]:
            spots: list[tuple[int, int]] = []
            x = row = 0
            for i, width in enumerate(widths):
                left = len(widths) - i - 1
                if x and x + width > room and row < rows - 1:
                    x, row = 0, row + 1  # the next row
                more = fm.horizontalAdvance(f"+{left} more") if reserve and left else 0
                if x + width + (more if row == rows - 1 else 0) > room:
                    break
                spots.append((x, row))
                x += width
            return spots

        spots = place(reserve=False)
        if len(spots) < len(widths):
            spots = place(reserve=True)
        used = (spots[-1][1] + 1) if spots else 1
        top = (self.height() - used * row_h) // 2 + 2
        rects = [QRect(8 + x, top + row * row_h, widths[i] - 10, fm.height())
                 for i, (x, row) in enumerate(spots)]
        more_at = None
        if len(spots) < len(widths):
            x, row = (spots[-1][0] + widths[len(spots) - 1], spots[-1][1]) if spots else (0, 0)
            more_at = QPoint(8 + x, top + row * row_h + fm.ascent())
        return rects, more_at

    def entry_rect(self, index: int) -> QRect:
        """Where entry ``index`` is drawn (empty when it is not drawn whole)."""
        rects = self._layout()[0]
        return rects[index] if 0 <= index < len(rects) else QRect()

    def entry_at(self, x: int, y: int) -> int | None:
        for i, rect in enumerate(self._layout()[0]):
            if rect.adjusted(-2, -2, 2, 2).contains(x, y):
                return i
        return None

    def paintEvent(self, event) -> None:  # noqa: N802
        from PySide6.QtGui import QColor

        painter = QPainter(self)
        fm = QFontMetrics(self.font())
        chip = fm.height() - 2
        text = self.palette().color(QPalette.ColorRole.WindowText)
        muted = self.palette().color(QPalette.ColorRole.PlaceholderText)
        rects, more_at = self._layout()
        for entry, rect in zip(self._entries, rects, strict=False):
            x, y = rect.x(), rect.y()
            painter.setPen(text)
            if entry.shown:
                painter.fillRect(x, y + 1, chip, chip, QColor(*entry.rgb))
                painter.drawRect(x, y + 1, chip - 1, chip - 1)
            else:  # hidden: a hollow chip in the class's colour
                painter.setPen(QColor(*entry.rgb))
                painter.drawRect(x, y + 1, chip - 1, chip - 1)
                painter.drawRect(x + 1, y + 2, chip - 3, chip - 3)
            painter.setPen(text if entry.shown else muted)
            painter.drawText(x + chip + 6, y + fm.ascent(), self._text(entry))
        if more_at is not None:  # the rest in the tooltip
            painter.setPen(text)
            painter.drawText(more_at, f"+{len(self._entries) - len(rects)} more")
        painter.end()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        index = self.entry_at(int(event.position().x()), int(event.position().y()))
        toggles = index is not None and self._entries[index].cls is not None
        self.setCursor(Qt.CursorShape.PointingHandCursor if toggles
                       else Qt.CursorShape.ArrowCursor)
        super().mouseMoveEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        index = self.entry_at(int(event.position().x()), int(event.position().y()))
        cls = self._entries[index].cls if index is not None else None
        if event.button() == Qt.MouseButton.LeftButton and cls is not None:
            self.class_toggled.emit(cls)
            event.accept()
            return
        super().mousePressEvent(event)

    def shown_count(self) -> int:
        """How many entries are drawn whole (the others are named as '+N more', which is
        kept room for: no name is ever cut off)."""
        return len(self._layout()[0])
