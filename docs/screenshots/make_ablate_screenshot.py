"""Regenerate docs/screenshots/ablate.png: ablate mode after clicking a segment.

Run it with a display (or under Xvfb: ``xvfb-run -a -s "-screen 0 1600x1000x24" python
docs/screenshots/make_ablate_screenshot.py``). Like make_screenshot.py it uses the default
architecture with untrained weights (no download needed), so the window shows its
UNTRAINED banner.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ARCHITECTURE = "fcn_resnet101"
SIZE = 320
WINDOW = (1440, 900)
OUT = Path(__file__).with_name("ablate.png")


def main() -> int:
    from PySide6.QtCore import QSettings

    from segexplorer.gui.app import _application
    from segexplorer.gui.main_window import MainWindow
    from segexplorer.gui.options import ModelChoice

    app, _created = _application(sys.argv[:1], offscreen=False)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings, interactive=False)
        window.model_panel.set_choice(ModelChoice(ARCHITECTURE, "untrained", "cpu", SIZE))
        window.resize(*WINDOW)
        window.show()
        window.open_sample_image()
        if not window.wait_until(lambda: window.prediction is not None, 900):
            print(f"timed out: {window.last_error}", file=sys.stderr)
            return 1
        window.ablation.set_active(True)
        window.wait_until(lambda: not window.runner.is_busy(), 900)
        # click the middle of the second largest class
        pred = window.prediction
        cls = pred.present_classes[1]
        ys, xs = (pred.class_map == cls).nonzero()
        i = len(xs) // 2
        window.ablation.click(int(xs[i]), int(ys[i]))
        if not window.wait_until(lambda: window.ablation.shown is not None, 900):
            print(f"timed out: {window.last_error}", file=sys.stderr)
            return 1
        window.wait_until(lambda: False, 0.5)  # let the layout settle
        app.processEvents()
        window.grab().save(str(OUT))
        print(window.ablation.shown.summary)
        window.close()
    print(OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
