"""The window never freezes: heartbeat during a sweep, closing mid-job, rapid requests."""

from __future__ import annotations

import time

import numpy as np
from gui_support import SLOW, SlowDown, choose, enter_layer, wait_for_prediction, wait_idle
from PySide6.QtCore import QTimer

from segexplorer.gui.document.choices import ABLATION, GRADCAM


def test_heartbeat_keeps_beating_while_a_sweep_runs(qtbot, make_window, blocks_image):
    window = make_window(architecture=SLOW)
    window.document.image.open(blocks_image)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)
    SlowDown.seconds = 0.7  # 5 segments: a sweep of about 3.5 s
    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.setInterval(50)
    heartbeat.timeout.connect(lambda: beats.append(time.monotonic()))
    heartbeat.start()
    start = time.monotonic()
    choose(window.explain_panel.method, ABLATION)
    qtbot.waitUntil(lambda: window.document.store.has_result(ABLATION), timeout=20000)
    heartbeat.stop()
    took = time.monotonic() - start
    gaps = np.diff([start] + beats)
    assert took > 3.0, "the sweep should have lasted seconds"
    assert gaps.max() < 0.5, f"the main thread stalled for {gaps.max():.2f} s"


def test_closing_during_a_job_returns_within_two_seconds_silently(qtbot, make_window,
                                                                  blocks_image, capfd):
    window = make_window(architecture=SLOW)
    window.document.image.open(blocks_image)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)
    SlowDown.seconds = 0.5  # each forward pass cannot be interrupted: up to 0.5 s
    choose(window.explain_panel.method, ABLATION)
    qtbot.waitUntil(lambda: window.runner.live_thread_count() == 1, timeout=5000)
    time.sleep(0.2)  # well inside a forward pass
    capfd.readouterr()
    start = time.monotonic()
    window.close()
    elapsed = time.monotonic() - start
    assert elapsed < 2.0
    assert window.runner.live_thread_count() == 0
    assert not window.unfinished_threads
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_fifty_rapid_requests_show_only_the_last(qtbot, make_window, blocks_image):
    window = make_window(architecture=SLOW)
    window.document.image.open(blocks_image)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)
    SlowDown.seconds = 0.05
    layers = ["body.0", "body.1", "body.2", "body.3"]
    started = window.runner.started_count
    store = window.document.store
    before = set(store.gradcam_keys())  # the default layer's Grad-CAM, shown on opening
    for i in range(50):
        enter_layer(window.explain_panel, layers[i % 4])
    assert window.document.analysis.choice.layer == "body.1"  # i = 49
    assert window.runner.live_thread_count() <= 1
    qtbot.waitUntil(lambda: window.document.store.has_result(GRADCAM), timeout=20000)
    wait_idle(qtbot, window)
    assert window.runner.live_thread_count() == 0
    assert window.runner.started_count - started <= 3
    shown = [key.layer for key in store.gradcam_keys() if key not in before]
    assert shown == ["body.1"]  # no stale layer ever reached the window
    assert "body.1 (1 x 8" in window.explain_panel.status.text()
