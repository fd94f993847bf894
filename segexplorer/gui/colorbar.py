"""A horizontal colour bar labelled in real attribution units (Captum's colour maps)."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QFontMetrics, QImage, QPainter, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..render import colorbar_rgba, colorbar_ticks
from ..render.normalize import NormalizedAttr
from .document.formatting import format_value
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
    """A row of colour chips with class names (the segmentation layer's legend)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._entries: list[tuple[str, tuple[int, int, int]]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_entries(self, entries: list[tuple[str, tuple[int, int, int]]]) -> None:
        self._entries = list(entries)
        self.setToolTip(", ".join(name for name, _ in entries))
        self.update()

    def entries(self) -> list[tuple[str, tuple[int, int, int]]]:
        return list(self._entries)

    def paintEvent(self, event) -> None:  # noqa: N802
        from PySide6.QtGui import QColor

        painter = QPainter(self)
        fm = QFontMetrics(self.font())
        chip = fm.height() - 2
        x, y = 8, (self.height() - fm.height()) // 2
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        shown = self.shown_count()
        for name, rgb in self._entries[:shown]:
            width = chip + 6 + fm.horizontalAdvance(name) + 16
            painter.fillRect(x, y + 1, chip, chip, QColor(*rgb))
            painter.drawRect(x, y + 1, chip - 1, chip - 1)
            painter.drawText(x + chip + 6, y + fm.ascent(), name)
            x += width
        if shown < len(self._entries):  # the rest in the tooltip
            painter.drawText(x, y + fm.ascent(), f"+{len(self._entries) - shown} more")
        painter.end()

    def shown_count(self) -> int:
        """How many entries are drawn whole (the others are named as '+N more', which is
        kept room for: no name is ever cut off)."""
        fm = QFontMetrics(self.font())
        chip = fm.height() - 2
        room = self.width() - 16
        widths = [chip + 6 + fm.horizontalAdvance(name) + 16 for name, _ in self._entries]
        if sum(widths) <= room:
            return len(widths)
        used, count = 0, 0
        for width in widths:
            more = fm.horizontalAdvance(f"+{len(widths) - count - 1} more")
            if used + width + more > room:
                break
            used += width
            count += 1
        return count
