"""Render the application icon from resources/segexplorer.svg.

    python packaging/make_icons.py

Writes (all committed, so a build needs neither this script nor a renderer):

- resources/icons/hicolor/NxN/apps/io.github.segexplorer.SegExplorer.png for N in 16..512
  and resources/icons/hicolor/scalable/apps/io.github.segexplorer.SegExplorer.svg
  (the freedesktop icon-theme layout: copy the tree into ~/.local/share/icons/);
- resources/segexplorer.ico (Windows: 16..256) and resources/segexplorer.icns (macOS: 16..1024);
- segexplorer/resources/icons/segexplorer-N.png (16..256) and segexplorer.svg: the copies the
  running application loads for its window icon (through importlib.resources).

The SVG is rendered with Qt's own SVG renderer (PySide6's QtSvg, already a dependency);
Pillow writes the ICO and ICNS containers from those renders.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "resources" / "segexplorer.svg"
APP_ID = "io.github.segexplorer.SegExplorer"
HICOLOR = ROOT / "resources" / "icons" / "hicolor"
RUNTIME = ROOT / "segexplorer" / "resources" / "icons"

PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)
RUNTIME_SIZES = (16, 24, 32, 48, 64, 128, 256)


def render(size: int):
    """The SVG drawn at size x size pixels, as a Pillow RGBA image."""
    from PIL import Image
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(SOURCE))
    if not renderer.isValid():
        raise SystemExit(f"{SOURCE}: not a valid SVG for Qt")
    image = QImage(size, size, QImage.Format.Format_RGBA8888)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    data = bytes(image.constBits())[: size * size * 4]
    return Image.frombytes("RGBA", (size, size), data)


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841
    sizes = sorted(set(PNG_SIZES) | set(ICO_SIZES) | set(ICNS_SIZES))
    images = {size: render(size) for size in sizes}

    for size in PNG_SIZES:
        folder = HICOLOR / f"{size}x{size}" / "apps"
        folder.mkdir(parents=True, exist_ok=True)
        images[size].save(folder / f"{APP_ID}.png", optimize=True)
    scalable = HICOLOR / "scalable" / "apps"
    scalable.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SOURCE, scalable / f"{APP_ID}.svg")

    largest = images[max(ICO_SIZES)]
    largest.save(ROOT / "resources" / "segexplorer.ico", format="ICO",
                 sizes=[(s, s) for s in ICO_SIZES],
                 append_images=[images[s] for s in ICO_SIZES if s != max(ICO_SIZES)])
    largest = images[max(ICNS_SIZES)]
    largest.save(ROOT / "resources" / "segexplorer.icns", format="ICNS",
                 append_images=[images[s] for s in ICNS_SIZES if s != max(ICNS_SIZES)])

    RUNTIME.mkdir(parents=True, exist_ok=True)
    for size in RUNTIME_SIZES:
        images[size].save(RUNTIME / f"segexplorer-{size}.png", optimize=True)
    shutil.copyfile(SOURCE, RUNTIME / "segexplorer.svg")
    print(f"icons written under {ROOT / 'resources'} and {RUNTIME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
