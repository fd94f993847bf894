"""The window's state and transitions (issue 26, items 1-4 and 10), driven through its
widgets: a new working size, a refused card, a new card's weights, quitting with unsaved
work, the autosave offered after a crash, and Run Batch from a dataset window.

Each test failed on main at 7f219e3 (run against main's code before the fix); the
document-level ones are in tests/test_transitions.py.
"""

from __future__ import annotations

from gui_support import wait_for_prediction, wait_idle
from PySide6.QtTest import QTest


def _open(qtbot, window, path):
    window.document.image.open(path)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)


def _new_prediction(qtbot, window, shape):
    qtbot.waitUntil(lambda: window.document.store.prediction is not None
                    and window.document.store.prediction.shape == shape, timeout=20000)
    wait_idle(qtbot, window)


# 1 -----------------------------------------------------------------------------------
def test_a_new_working_size_draws_the_results_over_the_whole_photo(qtbot, make_window,
                                                                   motorcycle_path):
    window = make_window(size=64)
    _open(qtbot, window, motorcycle_path)
    canvas = window.canvas
    assert canvas.image_size() == (94, 64) and canvas.original_size() == (741, 500)
    for size, shape in ((48, (48, 71)), (80, (80, 118)), (64, (64, 94))):
        window.model_panel.size_spin.setValue(size)
        window.model_panel.size_spin.editingFinished.emit()  # the end of editing
        _new_prediction(qtbot, window, shape)
        h, w = shape
        assert canvas.image_size() == (w, h)  # the overlays' grid is the new one
        assert canvas.overlay_rgba().shape[:2] == (h, w)
        # the last working pixel lies on the photo's last pixels, not inside or beyond
        corner = canvas.mapToScene(canvas.image_to_widget(w - 1, h - 1))
        assert 741 - 741 / w <= corner.x() <= 741 and 500 - 500 / h <= corner.y() <= 500
        # hovering the photo's bottom-right corner reads the new grid's last pixel
        QTest.mouseMove(canvas.viewport(), canvas.image_to_widget(w - 1, h - 1))
        qtbot.waitUntil(lambda w=w, h=h: window.status.hover_label.text().startswith(
            f"x {w - 1}, y {h - 1}"), timeout=5000)
    assert window.canvas.zoom() > 0
