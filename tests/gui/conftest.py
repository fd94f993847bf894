"""GUI test fixtures: offscreen Qt (before any Qt import), per-test settings, a window.

The tiny models they use are the shared ones (``tests/tiny_models.py``).
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = os.environ.get("SEGEXPLORER_TEST_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gui_support import SIZE, TINY, SlowDown  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    """Every test reads and writes its own settings folder."""
    folder = tmp_path_factory.mktemp("settings")
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture(autouse=True)
def no_slowdown():
    SlowDown.reset()
    yield
    SlowDown.reset()


@pytest.fixture(scope="session")
def blocks_image(tmp_path_factory) -> Path:
    """Coloured blocks on grey, 96 x 128: the tiny model predicts several classes."""
    rng = np.random.default_rng(0)
    img = np.full((96, 128, 3), 128, np.uint8)
    img[8:44, 8:56] = (220, 30, 30)
    img[8:44, 70:120] = (30, 200, 40)
    img[54:90, 8:56] = (30, 40, 220)
    img[54:90, 70:120] = (240, 230, 40)
    img = np.clip(img.astype(int) + rng.integers(-12, 12, img.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("images") / "blocks.png"
    Image.fromarray(img).save(path)
    return path


@pytest.fixture
def make_window(qtbot):
    """A factory for main windows on a tiny model; closes them and checks no thread leaks."""
    from segexplorer.gui.document.choices import ModelChoice
    from segexplorer.gui.main_window import MainWindow

    windows = []

    def make(architecture: str = TINY, size: int = SIZE, show: bool = True,
             interactive: bool = True, **kwargs):
        window = MainWindow(interactive=interactive, num_threads=1, **kwargs)
        window.model_panel.refresh_architectures()
        window.set_model_choice(ModelChoice(architecture, "untrained", "cpu", size))
        qtbot.addWidget(window)
        if show:
            window.resize(1100, 720)
            window.show()
            qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
        assert window.runner.live_thread_count() == 0, "a worker thread outlived its window"
