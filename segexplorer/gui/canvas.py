"""The image canvas: the image at its own resolution, one overlay layer, zoom, pan, hover.

The base is the opened image itself, one scene unit per original pixel (sharp when
zoomed in); the overlays (segmentation, explanation, ablation) are the engine's arrays at
the working resolution (what the model sees), scaled onto it. Coordinates in this API are
working pixels, the arrays' indices: ``image_to_widget`` / ``widget_to_image`` map between
what the user points at and them.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPalette, QPen, QTransform
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QFrame,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QLineEdit,
)

from .imaging import from_qimage, to_pixmap

MIN_ZOOM, MAX_ZOOM = 0.05, 64.0
CLICK_SLOP_PX = 4  # a press and release closer than this is a click, not a pan
ZOOM_STEP = 1.25


def surround(palette: QPalette) -> QColor:
    """A neutral surround a step away from the window colour, light or dark."""
    window = palette.color(QPalette.ColorRole.Window)
    return window.darker(115) if window.lightness() > 128 else window.lighter(125)


class StrokeItem(QGraphicsPathItem):
    """A brush or lasso stroke being drawn: its points in working pixels, drawn in scene
    units (``scale``: scene units per working pixel)."""

    def __init__(self) -> None:
        super().__init__()
        self.setZValue(4)
        pen = QPen(QColor(255, 214, 0), 0)
        pen.setCosmetic(True)
        self.setPen(pen)
        self.points: list[tuple[float, float]] | None = None

    def add(self, point: tuple[float, float], scale: tuple[float, float],
            closed: bool) -> None:
        self.points = [*(self.points or []), point]
        path = QPainterPath()
        sx, sy = scale
        for i, (x, y) in enumerate(self.points):
            (path.moveTo if i == 0 else path.lineTo)(QPointF(x * sx, y * sy))
        if closed:
            path.closeSubpath()
        self.setPath(path)

    def finish(self) -> list[tuple[float, float]]:
        points, self.points = self.points or [], None
        self.setPath(QPainterPath())
        return points


class ImageCanvas(QGraphicsView):
    """Shows ``base`` (H x W x 3) with an ``overlay`` (H x W x 3|4) at an opacity."""

    hovered = Signal(int, int)  # image pixel under the cursor, (-1, -1) when outside
    clicked = Signal(int, int)  # image pixel clicked (a press and release without a drag)
    #: a region drawn with the brush or the lasso: tool, points in working pixels
    stroke_finished = Signal(str, list)
    zoom_changed = Signal(float)

    def __init__(self, parent=None, placeholder: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("imageCanvas")
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._base = QGraphicsPixmapItem()
        self._overlay = QGraphicsPixmapItem()
        self._outline = QGraphicsPixmapItem()
        for z, item in zip((0, 2, 3), (self._base, self._overlay, self._outline), strict=True):
            item.setZValue(z)
            item.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
            self._scene.addItem(item)
        self._size: tuple[int, int] | None = None  # (width, height), working pixels
        self._full: tuple[int, int] | None = None  # (width, height) of the shown image
        self._scale = (1.0, 1.0)  # original pixels per working pixel, x and y
        self._working_base: np.ndarray | None = None
        # the arrays shown now (compared by identity: a redraw with the same ones is free)
        self._base_array: np.ndarray | None = None
        self._overlay_array: np.ndarray | None = None
        self._outline_key: object = None
        self._fit = True
        self._press: QPoint | None = None
        self._cursor = Qt.CursorShape.CrossCursor
        self.click_modifiers = Qt.KeyboardModifier.NoModifier  # of the latest click
        self._focusing_click = False  # the press that gave the canvas the focus
        self.tool = "click"  # 'brush' and 'lasso' draw regions instead of panning
        self._stroke = StrokeItem()
        # other visible layers, between the image and the overlay (the Layers panel)
        self._under: list[tuple[QGraphicsPixmapItem, np.ndarray]] = []
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(self._on_focus_changed)
        self._placeholder = placeholder  # what an empty canvas says
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setMouseTracking(True)
        self.viewport().setMouseTracking(True)
        self.viewport().setCursor(self._cursor)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setMinimumSize(240, 200)
        self.setBackgroundBrush(surround(self.palette()))

    # -- content ----------------------------------------------------------------------
    def show_layers(self, base: np.ndarray | None, overlay: np.ndarray | None,
                    opacity: float, outline: np.ndarray | None, outline_key: object,
                    working: np.ndarray | None = None, base_visible: bool = True,
                    under: tuple[tuple[np.ndarray, float], ...] = ()) -> None:
        """Show these arrays; those already shown (the same objects, the same outline key)
        are not converted again. ``base`` is the image at its own resolution, ``working``
        the same at the working resolution (the overlays' grid)."""
        shown_working = working if working is not None else base
        if base is not self._base_array or shown_working is not self._working_base:
            self.set_base(base, working)  # a new image, or a new working size
        if overlay is not self._overlay_array:
            self.set_overlay(overlay)
        self._overlay.setOpacity(float(opacity))
        self._base.setVisible(base is not None and base_visible)
        self.set_under(under)
        if outline_key != self._outline_key or (outline_key is None
                                                 and self._outline.isVisible()):
            self.set_outline(outline)
            self._outline_key = outline_key

    def set_base(self, rgb: np.ndarray | None, working: np.ndarray | None = None) -> None:
        """The image (H x W x 3 uint8) at its own resolution, and at the working
        resolution (the overlays' grid; default: the same). A new image resets the zoom;
        a new working size of the same image keeps it (the overlays are scaled anew)."""
        self._base_array = rgb
        self._working_base = working if working is not None else rgb
        if rgb is None:
            self._base.setPixmap(to_pixmap(np.zeros((1, 1, 3), np.uint8)))
            self._base.setVisible(False)
            self.set_overlay(None)
            self.set_outline(None)
            self._size = self._full = None
            self._scene.setSceneRect(QRectF(0, 0, 1, 1))
            self.viewport().update()
            return
        assert self._working_base is not None
        full = (int(rgb.shape[1]), int(rgb.shape[0]))
        size = (int(self._working_base.shape[1]), int(self._working_base.shape[0]))
        self._base.setPixmap(to_pixmap(rgb))
        self._base.setVisible(True)
        self._scale = (full[0] / size[0], full[1] / size[1])
        scaled = QTransform.fromScale(*self._scale)
        for item in (self._overlay, self._outline, *(item for item, _a in self._under)):
            item.setTransform(scaled)
        self._size = size
        if full != self._full:
            self._full = full
            self._scene.setSceneRect(QRectF(0, 0, full[0], full[1]))
            self.fit_to_window()

    def set_tool(self, tool: str) -> None:
        """'click' (click and pan), 'brush' or 'lasso' (a left drag draws a region)."""
        self.tool = tool
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag if tool == "click"
                         else QGraphicsView.DragMode.NoDrag)
        self.viewport().setCursor(self._cursor if tool == "click"
                                  else Qt.CursorShape.CrossCursor)

    def _stroke_to(self, pos: QPointF) -> None:
        point = self.mapToScene(pos.toPoint())
        sx, sy = self._scale
        self._stroke.add((point.x() / sx, point.y() / sy), self._scale, self.tool == "lasso")

    def set_click_cursor(self, shape: Qt.CursorShape) -> None:
        """The cursor over the image (a pointing hand says a click ablates)."""
        self._cursor = shape
        self.viewport().setCursor(shape)

    def set_overlay(self, image: np.ndarray | None, opacity: float | None = None) -> None:
        self._overlay_array = image
        if image is None:
            self._overlay.setVisible(False)
            return
        self._overlay.setPixmap(to_pixmap(image))
        self._overlay.setVisible(True)
        if opacity is not None:
            self._overlay.setOpacity(opacity)

    def set_under(self, layers: tuple[tuple[np.ndarray, float], ...]) -> None:
        """Layers drawn between the image and the overlay, bottom first (working grid)."""
        arrays = [array for array, _opacity in layers]
        if len(arrays) != len(self._under) or any(
                shown is not array for (_item, shown), array in zip(self._under, arrays)):
            for item, _array in self._under:
                self._scene.removeItem(item)
            self._under = []
            for z, array in enumerate(arrays):
                item = QGraphicsPixmapItem(to_pixmap(array))
                item.setZValue(1 + z / 10)
                item.setShapeMode(QGraphicsPixmapItem.ShapeMode.BoundingRectShape)
                item.setTransform(QTransform.fromScale(*self._scale))
                self._scene.addItem(item)
                self._under.append((item, array))
        for (item, _array), (_a, opacity) in zip(self._under, layers, strict=True):
            item.setOpacity(float(opacity))

    def under_count(self) -> int:
        """How many other layers are drawn under the overlay."""
        return len(self._under)

    def overlay_opacity(self) -> float:
        return float(self._overlay.opacity())

    def set_outline(self, rgba: np.ndarray | None) -> None:
        self._outline_key = None
        if rgba is None:
            self._outline.setVisible(False)
            return
        self._outline.setPixmap(to_pixmap(rgba))
        self._outline.setVisible(True)

    def image_size(self) -> tuple[int, int] | None:
        return self._size

    def overlay_visible(self) -> bool:
        return self._overlay.isVisible()

    def overlay_rgba(self) -> np.ndarray | None:
        """The overlay layer's pixels (H x W x 4), None while it is hidden."""
        if not self._overlay.isVisible():
            return None
        return from_qimage(self._overlay.pixmap().toImage())

    def outline_visible(self) -> bool:
        return self._outline.isVisible()

    def outline_rgba(self) -> np.ndarray | None:
        """The outline layer's pixels (H x W x 4), None while it is hidden."""
        if not self._outline.isVisible():
            return None
        return from_qimage(self._outline.pixmap().toImage())

    def original_size(self) -> tuple[int, int] | None:
        """(width, height) of the image as opened (the working size is image_size)."""
        return self._full

    def compose(self, working: bool = False) -> QImage | None:
        """What the canvas shows, without the outline: at the image's own resolution
        (the overlay resampled onto it, smoothly), or at the working resolution."""
        if self._size is None or self._full is None or self._working_base is None:
            return None
        size = self._size if working else self._full
        image = QImage(size[0], size[1], QImage.Format.Format_RGB888)
        image.fill(QColor("white"))
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        if working:
            if self._base.isVisible():
                painter.drawPixmap(0, 0, to_pixmap(self._working_base))
        else:
            if self._base.isVisible():
                painter.drawPixmap(0, 0, self._base.pixmap())
            painter.scale(*self._scale)
        for item, _array in self._under:
            painter.setOpacity(item.opacity())
            painter.drawPixmap(0, 0, item.pixmap())
        if self._overlay.isVisible():
            painter.setOpacity(self._overlay.opacity())
            painter.drawPixmap(0, 0, self._overlay.pixmap())
        painter.end()
        return image

    # -- zoom ---------------------------------------------------------------------------
    def zoom(self) -> float:
        return float(self.transform().m11())

    def set_zoom(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``factor``, keeping the point at viewport position ``anchor`` in place
        (the view's centre by default)."""
        factor = float(min(MAX_ZOOM, max(MIN_ZOOM, factor)))
        self._fit = False
        if anchor is None:
            anchor = QPointF(self.viewport().rect().center())
        scene_point = self.mapToScene(anchor.toPoint())
        self.setTransform(QTransform.fromScale(factor, factor))
        moved = self.mapFromScene(scene_point) - anchor.toPoint()
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + moved.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + moved.y())
        self._zoom_updated()

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom() * ZOOM_STEP)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom() / ZOOM_STEP)

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    def fit_to_window(self) -> None:
        self._fit = True
        if self._size is None:
            return
        self.resetTransform()
        self.fitInView(self._scene.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._zoom_updated()

    def is_fit(self) -> bool:
        return self._fit

    def _zoom_updated(self) -> None:
        # Sharp pixels when magnified (you want to see them), smooth when reduced.
        smooth = self.zoom() < 2.0
        mode = (Qt.TransformationMode.SmoothTransformation if smooth
                else Qt.TransformationMode.FastTransformation)
        for item in (self._base, self._overlay, self._outline):
            item.setTransformationMode(mode)
        self.zoom_changed.emit(self.zoom())

    # -- coordinates ----------------------------------------------------------------------
    def image_to_widget(self, x: float, y: float) -> QPoint:
        """Viewport position of the centre of image pixel (x, y) (for tests and tools)."""
        sx, sy = self._scale
        return self.mapFromScene(QPointF((x + 0.5) * sx, (y + 0.5) * sy))

    def widget_to_image(self, pos: QPoint | QPointF) -> tuple[int, int] | None:
        """Image pixel under a viewport position, or None outside the image."""
        if self._size is None:
            return None
        point = self.mapToScene(QPoint(int(pos.x()), int(pos.y())))
        sx, sy = self._scale
        x, y = int(np.floor(point.x() / sx)), int(np.floor(point.y() / sy))
        if 0 <= x < self._size[0] and 0 <= y < self._size[1]:
            return x, y
        return None

    # -- events ---------------------------------------------------------------------------
    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt's name
        delta = event.angleDelta().y()
        if delta == 0 or self._size is None:
            return
        self.set_zoom(self.zoom() * 1.25 ** (delta / 120.0), anchor=event.position())
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fit:
            self.fit_to_window()

    def focusInEvent(self, event) -> None:  # noqa: N802
        super().focusInEvent(event)
        self.viewport().update()  # the focus frame (drawForeground)

    def focusOutEvent(self, event) -> None:  # noqa: N802
        super().focusOutEvent(event)
        self.viewport().update()

    def has_focus_frame(self) -> bool:
        """Whether the frame that says keys go to the image is drawn."""
        return self.hasFocus()

    def _on_focus_changed(self, old, new) -> None:
        # A click that leaves a text field (the layer path, the working size) for the
        # image only moves the focus here: it must not also pick a class (the press
        # arrives right after this). Clicks from buttons and lists act at once.
        self._focusing_click = (new is self and isinstance(old, (QLineEdit, QAbstractSpinBox))
                                and QApplication.mouseButtons() != Qt.MouseButton.NoButton)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self.tool != "click" and event.button() == Qt.MouseButton.LeftButton \
                and self._size is not None:
            if self._stroke.scene() is None:
                self._scene.addItem(self._stroke)
            self._stroke.points = None
            self._stroke_to(event.position())
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.position().toPoint()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._stroke.points is not None and event.button() == Qt.MouseButton.LeftButton:
            self.stroke_finished.emit(self.tool, self._stroke.finish())
            return
        super().mouseReleaseEvent(event)
        self.viewport().setCursor(self._cursor)  # the hand-drag mode changed it
        if event.button() != Qt.MouseButton.LeftButton or self._press is None:
            return
        pos = event.position().toPoint()
        moved = (pos - self._press).manhattanLength()
        self._press = None
        focusing, self._focusing_click = self._focusing_click, False
        if moved <= CLICK_SLOP_PX and not focusing:
            hit = self.widget_to_image(pos)
            if hit is not None:
                self.click_modifiers = event.modifiers()  # Shift+click adds a segment
                self.clicked.emit(*hit)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._stroke.points is not None:
            self._stroke_to(event.position())
        super().mouseMoveEvent(event)
        if self._fit and self._press is not None and (event.position().toPoint() - self._press
                                                      ).manhattanLength() > CLICK_SLOP_PX:
            self._fit = False  # the user is panning: the zoom stays as it is
            self.zoom_changed.emit(self.zoom())
        hit = self.widget_to_image(event.position())
        self.hovered.emit(*(hit if hit is not None else (-1, -1)))

    def leaveEvent(self, event) -> None:  # noqa: N802
        super().leaveEvent(event)
        self.hovered.emit(-1, -1)

    def changeEvent(self, event) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() in (event.Type.PaletteChange, event.Type.StyleChange):
            self.setBackgroundBrush(surround(self.palette()))

    def drawForeground(self, painter: QPainter, rect) -> None:  # noqa: N802
        super().drawForeground(painter, rect)
        if self.hasFocus():  # the image has no caret: a frame shows keys go to it
            painter.save()
            painter.resetTransform()
            pen = QPen(self.palette().color(QPalette.ColorRole.Highlight), 2)
            painter.setPen(pen)
            painter.drawRect(self.viewport().rect().adjusted(1, 1, -1, -1))
            painter.restore()
        if self._size is not None or not self._placeholder:
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        painter.setFont(font)
        painter.drawText(self.viewport().rect().adjusted(24, 24, -24, -24),
                         Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                         self._placeholder)
        painter.restore()
