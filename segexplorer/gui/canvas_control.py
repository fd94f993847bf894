"""What the mouse does on the canvas: hover reads the pixel (and, in ablate mode, outlines
the segment under the cursor), a click picks the target class (in ablate mode: ablates
its segment), a brush or lasso stroke ablates a region. It also keeps the canvas in step
with the document: its tool and cursor with ablate mode (the ablation state's ``tool``
and ``active``), its zoom with the view state's ``zoom`` (None: fit to the window)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel
from superqt.utils import qthrottled

from .binding import on_fields
from .canvas import ImageCanvas
from .document import Document
from .document.labels import class_at
from .document.presenting import Presenters

HOVER_THROTTLE_MS = 15  # hover text is cheap, but a fast mouse sends many moves


class CanvasControl(QObject):
    """The canvas's mouse, over the document's view and ablation states."""

    ablate_mode_entered = Signal()  # the window shows the Ablation panel

    def __init__(self, doc: Document, presenters: Presenters, canvas: ImageCanvas,
                 hover_label: QLabel, status: Callable[[str, int], None]) -> None:
        super().__init__(canvas)
        self.doc, self.presenters, self.canvas = doc, presenters, canvas
        self.hover_label, self._status = hover_label, status
        self._hover = qthrottled(self._show_hover, timeout=HOVER_THROTTLE_MS, parent=self)
        canvas.hovered.connect(self._hover)
        canvas.clicked.connect(self._on_click)
        canvas.stroke_finished.connect(
            lambda tool, points: doc.ablation.draw_region(tool, points))
        on_fields(doc.ablation, "tool", lambda: canvas.set_tool(doc.ablation.tool))
        canvas.zoom_changed.connect(
            lambda z: setattr(doc.view, "zoom", None if canvas.is_fit() else z))
        on_fields(doc.view, "zoom", self._show_zoom, now=False)
        on_fields(doc.ablation, "active", self._on_ablate_mode, now=False)
        doc.image.opened.connect(self._on_opened)

    def _show_zoom(self) -> None:
        zoom, canvas = self.doc.view.zoom, self.canvas
        if zoom is None and not canvas.is_fit():
            canvas.fit_to_window()
        elif zoom is not None and abs(canvas.zoom() - zoom) > 1e-9 * zoom:
            canvas.set_zoom(zoom)

    def _on_opened(self, _source: object) -> None:
        self.canvas.set_base(None)  # a new image always starts fitted to the window
        self.show_idle()

    def show_idle(self) -> None:
        """The status-bar hint while the cursor is off the image."""
        self.hover_label.setText(self.presenters.describe_pixel(-1, -1))

    def _show_hover(self, x: int, y: int) -> None:
        self.hover_label.setText(self.presenters.describe_pixel(x, y))
        if self.doc.ablation.active:
            self.doc.ablation.hover(x, y)  # outline what a click ablates

    def _on_click(self, x: int, y: int) -> None:
        doc = self.doc
        if doc.ablation.active:
            shift = bool(self.canvas.click_modifiers & Qt.KeyboardModifier.ShiftModifier)
            doc.ablation.click(x, y, add=shift)
            return
        pred, prepared = doc.store.prediction, doc.image.prepared
        if pred is None or prepared is None or pred.shape != prepared.shape:
            return
        cls = class_at(pred, x, y)  # a multi-label model's most probable class there
        if cls is None:
            self._status("No class here: click a pixel of a class to explain it.", 3000)
            return
        doc.view.target = cls
        self._status(f"Target: {pred.categories[cls]}", 3000)

    def _on_ablate_mode(self) -> None:
        on = self.doc.ablation.active
        self.canvas.set_click_cursor(Qt.CursorShape.PointingHandCursor if on
                                     else Qt.CursorShape.CrossCursor)
        if on:
            self.ablate_mode_entered.emit()
        self.show_idle()
