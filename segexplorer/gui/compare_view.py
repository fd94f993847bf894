"""The split view while comparing: model A, model B and B - A (or the changed pixels)
side by side in the canvas area, each an :class:`~.canvas.ImageCanvas` over the same
image, with zoom and pan linked (:class:`LinkedCanvases`).

A's and B's maps share one colour bar (one symmetric scale); B - A has its own, in
attribution units. The mouse works as on the single canvas: hover reads both models'
classes, a click picks the class shown (in ablate mode: ablates the segment both models
share under it, in both), and the brush and the lasso ablate a drawn region in both.
Everything shown is the presenter's :class:`~.document.comparison_split.SplitView`.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from .binding import bind_combo
from .canvas import ImageCanvas
from .colorbar import ColorBar
from .document.comparison import THIRD_LABELS

if TYPE_CHECKING:
    from .document.ablation import AblationState
    from .document.comparison import ComparisonState
    from .document.comparison_split import SplitView

SIDES = ("a", "b", "a")  # whose prediction a click on each view reads (B - A: A's)


class LinkedCanvases(QObject):
    """Zoom and pan one canvas: the others follow (the same zoom, the same centre)."""

    def __init__(self, canvases: list[ImageCanvas], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.canvases = canvases
        self._following = False
        for canvas in canvases:
            canvas.zoom_changed.connect(lambda _z, c=canvas: self.follow(c))
            canvas.horizontalScrollBar().valueChanged.connect(
                lambda _v, c=canvas: self.follow(c))
            canvas.verticalScrollBar().valueChanged.connect(
                lambda _v, c=canvas: self.follow(c))

    def follow(self, source: ImageCanvas) -> None:
        if self._following or source.image_size() is None:
            return
        self._following = True
        try:
            centre = source.mapToScene(source.viewport().rect().center())
            for canvas in self.canvases:
                if canvas is source or canvas.image_size() is None:
                    continue
                if source.is_fit():
                    canvas.fit_to_window()
                else:
                    canvas.set_zoom(source.zoom())
                    canvas.centerOn(centre)
        finally:
            self._following = False


class CompareView(QWidget):
    """A, B and the third view, titled, over linked canvases, with their colour bars. The
    views sit in a row, or two by two when that shows the image larger (a narrow
    window, a tall image)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self._comparison: ComparisonState | None = None
        self._view: SplitView | None = None
        self._columns = 0
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(4)
        self.titles: list[QLabel] = []
        self.messages: list[QLabel] = []
        self.canvases: list[ImageCanvas] = []
        self.panes: list[QWidget] = []
        for i in range(3):
            pane = QWidget(self)
            column = QVBoxLayout(pane)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(1)
            title = QLabel("", pane)
            title.setObjectName(f"compareTitle{i}")
            font = title.font()
            font.setBold(True)
            title.setFont(font)
            title.setMinimumWidth(40)
            message = QLabel("", pane)
            message.setObjectName(f"compareMessage{i}")
            message.setWordWrap(True)
            message.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            message.setMinimumWidth(40)
            canvas = ImageCanvas(pane)
            canvas.setObjectName(f"compareCanvas{i}")
            canvas.setMinimumSize(100, 100)
            if i == 2:
                row = QHBoxLayout()
                self.third = QComboBox(pane)
                self.third.setObjectName("compareThirdCombo")
                for value, label in THIRD_LABELS.items():
                    self.third.addItem(label, value)
                self.third.setToolTip("The third view: B's map minus A's, or the pixels "
                                      "whose class changed")
                row.addWidget(self.third)
                row.addWidget(title, 1)
                column.addLayout(row)
            else:
                column.addWidget(title)
            column.addWidget(message)
            column.addWidget(canvas, 1)
            self.titles.append(title)
            self.messages.append(message)
            self.canvases.append(canvas)
            self.panes.append(pane)
        self.maps_footer = QWidget(self)
        maps = QVBoxLayout(self.maps_footer)
        maps.setContentsMargins(0, 0, 0, 0)
        maps.setSpacing(0)
        self.maps_bar = ColorBar(self.maps_footer, compact=True)
        self.maps_bar.setObjectName("compareMapsBar")
        self.maps_caption = QLabel("", self.maps_footer)
        self.maps_caption.setWordWrap(True)
        self.maps_caption.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        maps.addWidget(self.maps_bar)
        maps.addWidget(self.maps_caption)
        self.third_footer = QWidget(self)
        third = QVBoxLayout(self.third_footer)
        third.setContentsMargins(0, 0, 0, 0)
        third.setSpacing(0)
        self.third_bar = ColorBar(self.third_footer, compact=True)
        self.third_bar.setObjectName("compareDifferenceBar")
        self.third_caption = QLabel("", self.third_footer)
        self.third_caption.setObjectName("compareThirdCaption")
        self.third_caption.setWordWrap(True)
        self.third_caption.setTextFormat(Qt.TextFormat.RichText)
        third.addWidget(self.third_bar)
        third.addWidget(self.third_caption)
        third.addStretch(1)
        self.linked = LinkedCanvases(self.canvases, self)
        self._arrange(3)

    def _arrange(self, columns: int) -> None:
        """Three views in a row, or two by two (the third below A, its colour bar or
        legend beside it)."""
        if columns == self._columns:
            return
        self._columns = columns
        grid = self.grid
        for widget in (*self.panes, self.maps_footer, self.third_footer):
            grid.removeWidget(widget)
        for i in range(4):
            grid.setRowStretch(i, 0)
            grid.setColumnStretch(i, 0)
        if columns == 3:
            for i, pane in enumerate(self.panes):
                grid.addWidget(pane, 0, i)
                grid.setColumnStretch(i, 1)
            grid.addWidget(self.maps_footer, 1, 0, 1, 2)
            grid.addWidget(self.third_footer, 1, 2)
            grid.setRowStretch(0, 1)
        else:
            grid.addWidget(self.panes[0], 0, 0)
            grid.addWidget(self.panes[1], 0, 1)
            grid.addWidget(self.maps_footer, 1, 0, 1, 2)
            grid.addWidget(self.panes[2], 2, 0)
            grid.addWidget(self.third_footer, 2, 1, Qt.AlignmentFlag.AlignTop)
            grid.setColumnStretch(0, 1)
            grid.setColumnStretch(1, 1)
            grid.setRowStretch(0, 1)
            grid.setRowStretch(2, 1)

    def columns(self) -> int:
        return self._columns

    def _best_columns(self) -> int:
        """3 or 2: whichever shows the image larger in this widget."""
        view = self._view
        if view is None or view.display is None:
            return self._columns or 3
        h, w = view.display.shape[:2]
        width, height = max(1, self.width()), max(1, self.height() - 90)
        row = min((width / 3) / w, height / h)
        square = min((width / 2) / w, (height / 2) / h)
        return 2 if square > row * 1.15 else 3

    def resizeEvent(self, event: object) -> None:  # noqa: N802
        super().resizeEvent(event)  # type: ignore[arg-type]
        self._arrange(self._best_columns())

    # -- binding -----------------------------------------------------------------------
    def bind(self, comparison: ComparisonState, ablation: AblationState,
             hover_text: Callable[[int, int], str], show_hover: Callable[[str], None]
             ) -> None:
        """The mouse on each view edits the comparison (see the module's notes)."""
        self._comparison = comparison
        bind_combo(self.third, comparison, "third")
        for i, canvas in enumerate(self.canvases):
            canvas.hovered.connect(lambda x, y: self._hover(x, y, hover_text, show_hover))
            canvas.clicked.connect(lambda x, y, i=i: self._click(x, y, i, ablation))
            canvas.stroke_finished.connect(
                lambda tool, points: comparison.draw_region(
                    tool, points, self._shape(), ablation.brush_radius * self._scale()))

    def _shape(self) -> tuple[int, int]:
        size = self.canvases[0].image_size()
        return (size[1], size[0]) if size is not None else (0, 0)

    def _scale(self) -> float:
        """Display pixels per A's working pixel (the brush's size is in working pixels)."""
        comparison = self._comparison
        prepared = comparison.image.prepared if comparison is not None else None
        if prepared is None:
            return 1.0
        return self._shape()[1] / max(1, prepared.shape[1])

    def _hover(self, x: int, y: int, text: Callable[[int, int], str],
               show: Callable[[str], None]) -> None:
        show(text(x, y))
        if self._comparison is not None:
            self._comparison.hover(x, y, self._shape())

    def _click(self, x: int, y: int, i: int, ablation: AblationState) -> None:
        comparison = self._comparison
        if comparison is None:
            return
        if ablation.active:
            shift = bool(self.canvases[i].click_modifiers & Qt.KeyboardModifier.ShiftModifier)
            comparison.click(x, y, self._shape(), add=shift)
        else:
            comparison.pick_at(x, y, self._shape(), SIDES[i])

    # -- showing the view ----------------------------------------------------------------
    def apply(self, view: SplitView) -> None:
        self._view = view
        if not view.active:
            return
        tool = view.tool if view.ablate else "click"
        for i, canvas in enumerate(self.canvases):
            pane = view.panes[i] if i < len(view.panes) else None
            if pane is None:
                canvas.show_layers(None, None, 1.0, None, None)
                continue
            self.titles[i].setText(pane.title)
            self.titles[i].setToolTip(pane.title)
            self.messages[i].setText(pane.message)
            self.messages[i].setVisible(bool(pane.message))
            canvas.show_layers(view.base, pane.overlay, pane.opacity, pane.outline,
                               pane.outline_key, view.display)
            if canvas.tool != tool:
                canvas.set_tool(tool)
            canvas.set_click_cursor(Qt.CursorShape.PointingHandCursor if view.ablate
                                    else Qt.CursorShape.CrossCursor)
        self.maps_bar.set_attribution(view.maps_bar, view.maps_caption)
        self.maps_bar.setVisible(view.maps_bar is not None)
        self.maps_caption.setText(view.maps_caption)
        self.third_bar.set_attribution(view.third_bar, view.third_caption, view.third_cmap)
        self.third_bar.setVisible(view.third_bar is not None)
        caption = html.escape(view.third_caption)
        if view.legend:  # each change in its colour, largest first
            caption += "".join(
                f'<br><span style="color: rgb{color}">&#9632;</span> {html.escape(label)}'
                for label, color in view.legend)
        self.third_caption.setText(caption)
        self._arrange(self._best_columns())

    def shown(self) -> SplitView | None:
        """The view last applied (tests and scripts read what is on screen through it)."""
        return self._view
