"""numpy arrays <-> Qt images (the drawing itself is render's).

``QImage(buffer, ...)`` shares the numpy buffer, which may be freed or reused while
Qt still reads it: every conversion here copies.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtGui import QColor, QImage, QPixmap


def to_qimage(array: np.ndarray) -> QImage:
    """H x W x 3 or H x W x 4 uint8 (RGB / straight-alpha RGBA) to an owned QImage."""
    arr = np.ascontiguousarray(array)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected H x W x 3|4 uint8, got {arr.shape} {arr.dtype}")
    h, w, channels = arr.shape
    fmt = QImage.Format.Format_RGB888 if channels == 3 else QImage.Format.Format_RGBA8888
    return QImage(arr.data, w, h, arr.strides[0], fmt).copy()


def to_pixmap(array: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(to_qimage(array))


def from_qimage(image: QImage) -> np.ndarray:
    """A QImage as an owned H x W x 4 uint8 RGBA array."""
    rgba = image.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h = rgba.width(), rgba.height()
    buffer = np.frombuffer(rgba.constBits(), dtype=np.uint8, count=rgba.sizeInBytes())
    return buffer.reshape(h, rgba.bytesPerLine())[:, : w * 4].reshape(h, w, 4).copy()


def encode_png(image: QImage) -> bytes:
    """A QImage as PNG bytes (clipboard images reach the engine this way)."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")  # type: ignore[call-overload]  # the stubs say bytes; PySide6 wants str
    buffer.close()
    return bytes(data.data())


def swatch(rgb, size: int = 14, border: QColor | None = None) -> QPixmap:
    """A small filled square with a thin border, for legends."""
    from PySide6.QtGui import QPainter

    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(int(rgb[0]), int(rgb[1]), int(rgb[2])))
    painter = QPainter(pixmap)
    painter.setPen(border or QColor(0, 0, 0, 110))
    painter.drawRect(0, 0, size - 1, size - 1)
    painter.end()
    return pixmap

