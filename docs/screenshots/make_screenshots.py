"""Regenerate the README's screenshots: main_window.png and ablate.png.

Run it with a display (or under Xvfb: ``xvfb-run -a -s "-screen 0 1600x1000x24" python
docs/screenshots/make_screenshots.py [main|ablate]``; both by default). It uses the default
architecture with untrained weights (no download needed), so the window shows its
UNTRAINED banner.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

ARCHITECTURE = "fcn_resnet101"
SIZE = 320
WINDOW = (1440, 900)
HERE = Path(__file__).parent
TIMEOUT_S = 900


class TimedOut(Exception):
    pass


@contextlib.contextmanager
def analysed_window():
    """The window on the bundled sample photo, predicted, with fresh settings."""
    from PySide6.QtCore import QSettings

    from segexplorer.gui.app import _application
    from segexplorer.gui.document.choices import ModelChoice
    from segexplorer.gui.main_window import MainWindow

    app, _created = _application(sys.argv[:1], offscreen=False)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings, interactive=False)
        window.set_model_choice(ModelChoice(ARCHITECTURE, "untrained", "cpu", SIZE))
        window.resize(*WINDOW)
        window.show()
        window.open_sample_image()
        wait(window, lambda: window.prediction is not None)
        try:
            yield app, window
        finally:
            window.close()


def wait(window, condition) -> None:
    if not window.wait_until(condition, TIMEOUT_S):
        raise TimedOut(f"timed out: {window.last_error}")


def save(app, window, name: str) -> Path:
    window.wait_until(lambda: False, 0.5)  # let the layout settle
    app.processEvents()
    out = HERE / name
    window.grab().save(str(out))
    return out


def main_window() -> Path:
    from segexplorer.gui.document.choices import ATTRIBUTION, GRADCAM

    with analysed_window() as (app, window):
        window.document.update_analysis(method=GRADCAM)
        window.set_layer(ATTRIBUTION)
        wait(window, lambda: window.has_result(GRADCAM))
        return save(app, window, "main_window.png")


def ablate() -> Path:
    with analysed_window() as (app, window):
        ablation = window.document.ablation
        ablation.set_active(True)
        wait(window, lambda: not window.runner.is_busy())
        # click the middle of the second largest class
        pred = window.prediction
        ys, xs = (pred.class_map == pred.present_classes[1]).nonzero()
        i = len(xs) // 2
        ablation.click(int(xs[i]), int(ys[i]))
        wait(window, lambda: ablation.shown is not None)
        print(ablation.shown.summary)
        return save(app, window, "ablate.png")


SCENES = {"main": main_window, "ablate": ablate}


def main(argv: list[str]) -> int:
    names = argv or list(SCENES)
    unknown = [n for n in names if n not in SCENES]
    if unknown:
        print(f"unknown screenshot {unknown[0]!r}: choose from {', '.join(SCENES)}",
              file=sys.stderr)
        return 2
    try:
        for name in names:
            print(SCENES[name]())
    except TimedOut as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
