"""GUI test fixtures: offscreen Qt (before any Qt import), per-test settings, a window.

The tiny models they use are the shared ones (``tests/tiny_models.py``).
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = os.environ.get("SEGEXPLORER_TEST_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")


import pytest  # noqa: E402
from gui_support import SIZE, TINY, SlowDown  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    """Every test reads and writes its own settings folder."""
    folder = tmp_path_factory.mktemp("settings")
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture(autouse=True)
def isolated_state(tmp_path_factory, monkeypatch):
    """Every test has its own state folder (the autosaved session)."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("SEGEXPLORER_STATE_DIR", str(folder))
    yield folder


@pytest.fixture(autouse=True)
def no_slowdown():
    SlowDown.reset()
    yield
    SlowDown.reset()


@pytest.fixture
def make_window(qtbot):
    """A factory for main windows on a tiny model; closes them and checks no thread leaks."""
    from segexplorer.gui.document.choices import ModelChoice
    from segexplorer.gui.main_window import MainWindow

    windows = []

    def make(architecture: str = TINY, size: int = SIZE, show: bool = True,
             interactive: bool = True, autosave: bool = False, **kwargs):
        from segexplorer.gui.settings import make_settings
        from segexplorer.gui.unsaved import AUTOSAVE_SETTING

        # autosaving writes a file in a job after each change: tests that count the jobs
        # of a click leave it off, the autosave's own tests switch it on
        make_settings().setValue(AUTOSAVE_SETTING, autosave)
        window = MainWindow(interactive=interactive, num_threads=1, **kwargs)
        window.model_panel.refresh_architectures()
        window.document.model.set(ModelChoice(architecture, "untrained", "cpu", size))
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
        box = window.dialogs.current
        discard = box.button(QMessageBox.StandardButton.Discard) if box is not None else None
        if discard is not None and box.isVisible():  # asked to save its ablations: the
            discard.click()                          # test is over, they are discarded
        assert window.runner.live_thread_count() == 0, "a worker thread outlived its window"
