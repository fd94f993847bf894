"""``segexplorer --smoke-test``: the real window, the whole analysis, a screenshot."""

from __future__ import annotations

from gui_support import BROKEN, TINY
from PIL import Image

from segexplorer.gui import app


def test_smoke_test_runs_the_analysis_and_writes_a_screenshot(qtbot, monkeypatch, tmp_path):
    # The same code path as the command line, on the tiny model to keep the suite fast
    # (the real default, lraspp_mobilenet_v3_large, is exercised by the command itself).
    monkeypatch.setattr(app, "SMOKE_ARCHITECTURE", TINY)
    monkeypatch.setattr(app, "SMOKE_SIZE", 64)
    shot = tmp_path / "shots" / "main.png"
    assert app.run_app(smoke_test=True, screenshot=str(shot)) == 0
    with Image.open(shot) as image:
        assert image.size == app.SMOKE_WINDOW_SIZE


def test_smoke_test_failure_is_one_line_and_non_zero(qtbot, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(app, "SMOKE_ARCHITECTURE", BROKEN)
    assert app.run_app(smoke_test=True) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err == ("segexplorer smoke test failed: prediction: "
                   "RuntimeError: tiny_broken always fails")
