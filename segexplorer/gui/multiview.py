"""Side-by-side panels, like Captum's ``visualize_image_attr_multiple``.

Panels are laid out in the grid (1 x n, 2 x 2, ...) that shows the images largest;
each panel keeps its title, image and colour bar together.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QFontMetrics, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QSizePolicy, QWidget

from .colorbar import colorbar_height, draw_colorbar
from .document.canvas_view import Panel
from .imaging import to_pixmap

__all__ = ["MultiView", "Panel"]

MARGIN, GAP = 10, 14


class MultiView(QWidget):
    """A grid of titled images, each with its own colour bar."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("multiView")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._panels: list[Panel] = []
        self._pixmaps: list[QPixmap] = []
        self._message = ""

    def panels(self) -> list[Panel]:
        return list(self._panels)

    def message(self) -> str:
        return self._message

    def set_message(self, text: str) -> None:
        self._panels, self._pixmaps, self._message = [], [], text
        self.update()

    def set_panels(self, panels: list[Panel]) -> None:
        self._panels = list(panels)
        self._pixmaps = [to_pixmap(p.rgba) for p in panels]
        self._message = ""
        self.update()

    def grid(self) -> tuple[int, int, float]:
        """(columns, rows, image scale) that show the panels largest in this widget."""
        n = len(self._panels)
        if n == 0:
            return 0, 0, 0.0
        h_img = max(p.rgba.shape[0] for p in self._panels)
        w_img = max(p.rgba.shape[1] for p in self._panels)
        extra = self._title_height() + colorbar_height(self.font(), True) + 4
        best = (n, 1, 0.0)
        for cols in range(1, n + 1):
            rows = math.ceil(n / cols)
            cell_w = (self.width() - 2 * MARGIN - (cols - 1) * GAP) / cols
            cell_h = (self.height() - 2 * MARGIN - (rows - 1) * GAP) / rows - extra
            scale = min(cell_w / w_img, cell_h / h_img)
            if scale > best[2]:
                best = (cols, rows, scale)
        return best

    def _title_height(self) -> int:
        return QFontMetrics(self.font()).height() + 4

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        palette = self.palette()
        if not self._panels:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect().adjusted(24, 24, -24, -24),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self._message)
            painter.end()
            return
        cols, rows, scale = self.grid()
        if scale <= 0:
            painter.end()
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        title_h = self._title_height()
        bar_h = colorbar_height(self.font(), True)
        cell_w = max(p.rgba.shape[1] for p in self._panels) * scale
        cell_h = max(p.rgba.shape[0] for p in self._panels) * scale + title_h + bar_h + 4
        total_w = cols * cell_w + (cols - 1) * GAP
        total_h = rows * cell_h + (rows - 1) * GAP
        left = (self.width() - total_w) / 2
        top = (self.height() - total_h) / 2
        bold = painter.font()
        bold.setBold(True)
        for i, (panel, pixmap) in enumerate(zip(self._panels, self._pixmaps)):
            row, col = divmod(i, cols)
            x = left + col * (cell_w + GAP)
            y = top + row * (cell_h + GAP)
            w, h = pixmap.width() * scale, pixmap.height() * scale
            painter.setFont(bold)
            painter.setPen(palette.color(QPalette.ColorRole.WindowText))
            title_rect = QRect(round(x), round(y), round(cell_w), title_h)
            painter.drawText(title_rect, Qt.AlignmentFlag.AlignCenter,
                             QFontMetrics(bold).elidedText(panel.title,
                                                           Qt.TextElideMode.ElideRight,
                                                           round(cell_w)))
            painter.setFont(self.font())
            image_rect = QRectF(x + (cell_w - w) / 2, y + title_h, w, h)
            painter.drawPixmap(image_rect, pixmap, QRectF(pixmap.rect()))
            if panel.normalized is not None:
                bar_rect = QRect(round(image_rect.left()), round(image_rect.bottom()) + 4,
                                 round(w), bar_h)
                draw_colorbar(painter, bar_rect, panel.normalized, palette, compact=True,
                              cmap=panel.colormap)
        painter.end()

    def compose(self) -> np.ndarray | None:
        """The panels' images side by side at native resolution (for export)."""
        if not self._panels:
            return None
        images = [p.rgba if p.rgba.shape[2] == 4 else
                  np.dstack([p.rgba, np.full(p.rgba.shape[:2], 255, np.uint8)])
                  for p in self._panels]
        height = max(i.shape[0] for i in images)
        gap = np.full((height, 8, 4), 255, np.uint8)
        row = []
        for i, img in enumerate(images):
            if img.shape[0] < height:
                pad = np.full((height - img.shape[0],) + img.shape[1:], 255, np.uint8)
                img = np.concatenate([img, pad])
            row.append(img)
            if i < len(images) - 1:
                row.append(gap)
        return np.ascontiguousarray(np.concatenate(row, axis=1))
