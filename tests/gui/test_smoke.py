"""``segexplorer --smoke-test``: the real window, the whole analysis, a screenshot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gui_support import BROKEN, TINY
from PIL import Image

from segexplorer.gui import app

ROOT = Path(__file__).resolve().parents[2]

# The smoke test in a process of its own, on Qt's offscreen screen at a chosen size (the way
# packaging/build.sh runs it), on the tiny model to keep the suite fast (the real default,
# lraspp_mobilenet_v3_large, is exercised by the command itself).
_SMOKE_SCRIPT = """
import sys
from tiny_models import TINY, register_tiny_models
register_tiny_models()
from segexplorer.gui import app
app.SMOKE_ARCHITECTURE = TINY
app.SMOKE_SIZE = 64
sys.exit(app.run_app(smoke_test=True, screenshot=sys.argv[1]))
"""


def _smoke_on_a_screen(tmp_path: Path, width: int, height: int):
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{
        "name": "test", "x": 0, "y": 0, "width": width, "height": height,
        "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    shot = tmp_path / "shots" / "main.png"
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                          os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", _SMOKE_SCRIPT, str(shot)], env=env,
                         capture_output=True, text=True, timeout=300)
    return run, shot


@pytest.mark.slow
def test_smoke_test_runs_the_analysis_at_the_windows_own_size_and_writes_a_screenshot(tmp_path):
    run, shot = _smoke_on_a_screen(tmp_path, 1600, 1000)
    assert run.returncode == 0, run.stderr
    with Image.open(shot) as image:  # the window as a first run opens it, not a forced size
        assert 0 < image.width <= 1600 and 0 < image.height <= 1000


def _build_script_screen() -> tuple[int, int]:
    text = (ROOT / "packaging" / "build.sh").read_text(encoding="utf-8")
    width, height = re.search(r'^screen="(\d+)x(\d+)"', text, re.MULTILINE).groups()
    return int(width), int(height)


@pytest.mark.slow
def test_the_window_fits_the_screen_the_bundles_smoke_test_runs_on(tmp_path):
    width, height = _build_script_screen()
    run, _ = _smoke_on_a_screen(tmp_path, width, height)
    assert run.returncode == 0, run.stderr


def test_smoke_test_fails_when_the_window_opens_larger_than_the_screen(qtbot, monkeypatch,
                                                                       tmp_path, capsys):
    from segexplorer.gui import main_window

    class TooBig(main_window.MainWindow):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            area = self.screen().availableGeometry()
            self.resize(area.width() + 100, area.height() + 50)

    monkeypatch.setattr(main_window, "MainWindow", TooBig)
    monkeypatch.setattr(app, "SMOKE_ARCHITECTURE", TINY)
    monkeypatch.setattr(app, "SMOKE_SIZE", 64)
    shot = tmp_path / "main.png"
    assert app.run_app(smoke_test=True, screenshot=str(shot)) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert re.fullmatch(r"segexplorer smoke test failed: the window opens at (\d+)x(\d+), "
                        r"larger than the screen's available area of (\d+)x(\d+)", err), err
    opened, area = err.split(" opens at ")[1].split(", larger than the screen's available area of ")
    assert int(opened.split("x")[0]) >= int(area.split("x")[0]) + 100
    assert shot.is_file()  # the analysis ran: the screenshot shows what did not fit


def test_smoke_test_failure_is_one_line_and_non_zero(qtbot, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(app, "SMOKE_ARCHITECTURE", BROKEN)
    assert app.run_app(smoke_test=True) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err == ("segexplorer smoke test failed: prediction: "
                   "RuntimeError: tiny_broken always fails")
