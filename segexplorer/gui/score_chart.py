"""A bar chart of every class's score before and after an ablation, drawn with QPainter.

One row per class: a light "before" bar with the class colour's outline, the "after" bar
solid inside it, so the change is the part of the light bar left uncovered (or the solid
bar overshooting it); the change is written at the right. Each row is drawn on its own
scale (its largest score fills the width), so a class with a small score shows its
relative change as plainly as the largest one; the numbers are written beside. Classes
whose score is 0 before and after are left out; the largest change comes first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from .colorbar import format_value

ROW_GAP = 5
EMPTY_TEXT = "Click a segment to see how every class's score moves."


def percent(relative: float) -> str:
    """A relative change as a signed percentage with the precision it needs."""
    value = relative * 100
    if value == 0:
        return "0 %"
    if abs(value) < 0.05:
        return "< 0.1 %" if value > 0 else "> -0.1 %"
    # whole percent from 1 % up, as the summary line writes it
    return f"{value:+.0f} %" if abs(value) >= 0.95 else f"{value:+.1f} %"


@dataclass(frozen=True)
class ChartRow:
    index: int
    name: str
    color: tuple[int, int, int]
    before: float
    after: float

    @property
    def delta(self) -> float:
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        return None if self.before == 0 else self.delta / abs(self.before)

    def change_text(self) -> str:
        sign = "+" if self.delta > 0 else ""
        text = f"{sign}{format_value(self.delta)}"
        return text if self.relative is None else f"{text} ({percent(self.relative)})"

    def tooltip(self) -> str:
        return (f"{self.name} (class {self.index})\nbefore {format_value(self.before)}\n"
                f"after {format_value(self.after)}\nchange {self.change_text()}")


def chart_rows(categories, colors, before: np.ndarray, after: np.ndarray) -> list[ChartRow]:
    """The rows to draw: classes with a score, the largest change first (then by index)."""
    rows = [ChartRow(c, categories[c], (int(colors[c][0]), int(colors[c][1]), int(colors[c][2])),
                     float(before[c]), float(after[c]))
            for c in range(len(categories)) if before[c] != 0 or after[c] != 0]
    return sorted(rows, key=lambda r: (-abs(r.delta), r.index))


class ScoreChart(QWidget):
    """Each class's aggregated score before and after the ablation, and the change."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("scoreChart")
        self._rows: list[ChartRow] = []
        self._emphasis: set[int] = set()
        self._message = EMPTY_TEXT
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)

    # -- content ------------------------------------------------------------------------
    def set_scores(self, categories, colors, before: np.ndarray, after: np.ndarray,
                   emphasis=()) -> None:
        """Show ``before`` and ``after`` (C each); ``emphasis``: the ablated classes."""
        self._rows = chart_rows(categories, colors, np.asarray(before), np.asarray(after))
        self._emphasis = {int(c) for c in emphasis}
        self._message = "" if self._rows else "Every class scores 0 before and after."
        self.updateGeometry()
        self.update()

    def clear(self, message: str = EMPTY_TEXT) -> None:
        self._rows = []
        self._emphasis = set()
        self._message = message
        self.updateGeometry()
        self.update()

    def rows(self) -> list[ChartRow]:
        """What the chart shows, top to bottom."""
        return list(self._rows)

    # -- geometry ---------------------------------------------------------------------------
    # Each row is two lines: the name and the change above, the bars below at full width,
    # so that a narrow dock still gives the bars room.
    def _line(self) -> int:
        return self.fontMetrics().height()

    def _bar_height(self) -> int:
        return max(10, self._line() * 2 // 3)

    def _row_height(self) -> int:
        return self._line() + 2 + self._bar_height()

    def _header_height(self) -> int:
        return self._line() + 8

    def _axis_height(self) -> int:
        return self._line() + 4

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        return QSize(300, self.minimumSizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        if not self._rows:
            return QSize(160, 3 * self._line())
        rows = len(self._rows) * (self._row_height() + ROW_GAP)
        return QSize(160, self._header_height() + rows + self._axis_height())

    def _bars(self) -> tuple[float, float]:
        """x and width of the bar area."""
        return 4.0, float(max(40, self.width() - 12))

    @staticmethod
    def _row_range(row: ChartRow) -> tuple[float, float]:
        """The row's own scale: 0 and both scores."""
        lo, hi = min(0.0, row.before, row.after), max(0.0, row.before, row.after)
        return (lo, hi) if hi > lo else (lo, lo + 1.0)

    def bar_widths(self) -> list[tuple[float, float]]:
        """(before, after) bar widths in pixels, top to bottom, as drawn."""
        _x, bars_w = self._bars()
        out = []
        for row in self._rows:
            lo, hi = self._row_range(row)
            out.append((abs(row.before) / (hi - lo) * bars_w,
                        abs(row.after) / (hi - lo) * bars_w))
        return out

    def _row_at(self, y: float) -> ChartRow | None:
        top = self._header_height()
        step = self._row_height() + ROW_GAP
        i = int((y - top) // step)
        return self._rows[i] if 0 <= i < len(self._rows) and y >= top else None

    # -- drawing --------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        pal = self.palette()
        text = pal.color(QPalette.ColorRole.WindowText)
        muted = pal.color(QPalette.ColorRole.PlaceholderText)
        if not self._rows:
            painter.setPen(muted)
            painter.drawText(self.rect().adjusted(4, 4, -4, -4),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self._message)
            return
        fm = self.fontMetrics()
        line = self._line()
        bars_x, bars_w = self._bars()

        dark = pal.color(QPalette.ColorRole.Window).lightness() < 128
        down = QColor("#ef6c6c") if dark else QColor("#c62828")
        up = QColor("#6fcf7a") if dark else QColor("#2e7d32")
        grey = QColor(150, 150, 150)

        # legend: what the two bars mean, and which way the change is written
        bar_h = self._bar_height()
        y = 4
        self._legend_box(painter, QRectF(bars_x, y + (line - bar_h) / 2, 18, bar_h), grey,
                         filled=False, text=text)
        painter.setPen(text)
        painter.drawText(QPointF(bars_x + 24, y + fm.ascent()), "before")
        after_x = bars_x + 24 + fm.horizontalAdvance("before") + 14
        self._legend_box(painter, QRectF(after_x, y + (line - bar_h / 2) / 2, 18, bar_h / 2),
                         grey, filled=True, text=text)
        painter.drawText(QPointF(after_x + 24, y + fm.ascent()), "after")
        painter.setPen(muted)
        painter.drawText(QRect(0, y, self.width() - 4, line), Qt.AlignmentFlag.AlignRight,
                         "change")

        row_h = self._row_height()
        top = self._header_height()
        bold = self.font()
        bold.setBold(True)
        chip = line - 4
        for i, row in enumerate(self._rows):
            y = top + i * (row_h + ROW_GAP)
            colour = QColor(*row.color)
            # line 1: swatch, name, change
            painter.fillRect(QRectF(bars_x, y + 2, chip, chip), colour)
            painter.setPen(QPen(text, 1))
            painter.drawRect(QRectF(bars_x, y + 2, chip, chip))
            change = row.change_text()
            change_w = fm.horizontalAdvance(change)
            name_font = bold if row.index in self._emphasis else self.font()
            painter.setFont(name_font)
            name_x = int(bars_x + chip + 6)
            name_rect = QRect(name_x, int(y), int(self.width() - 4 - change_w - 8 - name_x),
                              line)
            painter.drawText(name_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                             QFontMetrics(name_font).elidedText(
                                 row.name, Qt.TextElideMode.ElideRight, name_rect.width()))
            painter.setFont(self.font())
            painter.setPen(down if row.delta < 0 else up if row.delta > 0 else muted)
            painter.drawText(QRect(0, int(y), self.width() - 4, line),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, change)
            # line 2: before as a light bar outlined in the class colour, after solid inside,
            # on the row's own scale
            lo, hi = self._row_range(row)

            def x_of(value: float, lo: float = lo, hi: float = hi) -> float:
                return bars_x + (value - lo) / (hi - lo) * bars_w

            zero = x_of(0.0)
            by = y + line + 2
            b0, b1 = sorted((zero, x_of(row.before)))
            light = QColor(colour)
            light.setAlpha(70)
            before_rect = QRectF(b0, by, max(1.0, b1 - b0), bar_h)
            painter.fillRect(before_rect, light)
            # a near-black class (background) is outlined in the text colour to stay visible
            painter.setPen(QPen(colour if colour.lightness() > 40 else text, 1))
            painter.drawRect(before_rect)
            a0, a1 = sorted((zero, x_of(row.after)))
            after_rect = QRectF(a0, by + bar_h / 4, max(1.0, a1 - a0), bar_h / 2)
            painter.fillRect(after_rect, colour)
            painter.setPen(QPen(text, 1))
            painter.drawRect(after_rect)
            if lo < 0 < hi:  # where 0 is on this row's scale
                painter.setPen(QPen(muted, 1))
                painter.drawLine(QPointF(zero, by - 2), QPointF(zero, by + bar_h + 2))
        bottom = top + len(self._rows) * (row_h + ROW_GAP) - ROW_GAP
        painter.setPen(muted)
        painter.drawText(QRect(0, int(bottom + 4), self.width() - 4, line),
                         Qt.AlignmentFlag.AlignLeft,
                         fm.elidedText("Each bar on its class's own scale",
                                       Qt.TextElideMode.ElideRight, self.width() - 8))

    @staticmethod
    def _legend_box(painter: QPainter, rect: QRectF, colour: QColor, filled: bool,
                    text: QColor) -> None:
        fill = QColor(colour)
        if not filled:
            fill.setAlpha(70)
        painter.fillRect(rect, fill)
        painter.setPen(QPen(colour if not filled else text, 1))
        painter.drawRect(rect)

    # -- events ---------------------------------------------------------------------------
    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        row = self._row_at(event.position().y())
        if row is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(event.globalPosition().toPoint(), row.tooltip(), self)
        super().mouseMoveEvent(event)
