"""The window's state and transitions (issue 26, items 1-4 and 10), driven through its
widgets: a new working size, a refused card, a new card's weights, quitting with unsaved
work, the autosave offered after a crash, and Run Batch from a dataset window.

Each test failed on main at 7f219e3 (run against main's code before the fix); the
document-level ones are in tests/test_transitions.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from gui_support import wait_for_prediction, wait_idle
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox
from tiny_models import COLOUR


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


# 2 -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    arr = np.full((64, 64, 3), 200, np.uint8)
    arr[8:24, 8:24] = (230, 20, 20)  # red: class 1 for the colour model
    arr[40:56, 36:60] = (20, 220, 20)  # green: class 2
    path = tmp_path_factory.mktemp("transitions") / "squares.png"
    Image.fromarray(arr).save(path)
    return path


def _ablate_red_square(qtbot, window, squares):
    _open(qtbot, window, squares)
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton,
                     pos=window.canvas.image_to_widget(15, 15))
    qtbot.waitUntil(lambda: window.document.ablation.shown is not None, timeout=10000)
    wait_idle(qtbot, window)


def _question(window, title):
    box = window.dialogs.current
    assert isinstance(box, QMessageBox) and box.isVisible() and box.windowTitle() == title
    return box


def test_closing_with_unsaved_ablations_asks_save_discard_or_cancel(qtbot, make_window,
                                                                    squares, tmp_path):
    from segexplorer.gui.document.session_file import read

    window = make_window(COLOUR)
    _ablate_red_square(qtbot, window, squares)
    assert not window.close()  # Cancel: the window and its work stay
    _question(window, "Unsaved ablations").button(QMessageBox.StandardButton.Cancel).click()
    assert window.isVisible() and len(window.document.ablation.history) == 1
    # saved once: Save at closing writes the same file again, with what is on screen now
    path = tmp_path / "work.segx"
    window.session_record.save(path)  # (what File > Save Session does with its path)
    qtbot.waitUntil(lambda: path.is_file(), timeout=10000)
    wait_idle(qtbot, window)
    assert not window.session_record.unsaved()
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.ShiftModifier, window.canvas.image_to_widget(45, 48))
    qtbot.waitUntil(lambda: len(window.document.ablation.history) == 2, timeout=10000)
    wait_idle(qtbot, window)
    assert not window.close()
    _question(window, "Unsaved ablations").button(QMessageBox.StandardButton.Save).click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert [a.ids for a in read(path).history] == [(1,), (1, 2)]


def test_discarding_at_closing_closes_and_nothing_is_offered_next_time(
        qtbot, make_window, squares, isolated_state):
    window = make_window(COLOUR, autosave=True)
    _ablate_red_square(qtbot, window, squares)
    autosave = isolated_state / "autosave.segx"
    qtbot.waitUntil(autosave.is_file, timeout=10000)  # written after the change
    window.close()
    _question(window, "Unsaved ablations").button(QMessageBox.StandardButton.Discard).click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5000)
    assert not autosave.exists()
    again = make_window(COLOUR, autosave=True)
    qtbot.wait(50)
    assert again.dialogs.current is None  # no offer


def test_work_left_by_a_crash_is_offered_back_at_the_next_start(qtbot, make_window, squares,
                                                                isolated_state):
    crashed = make_window(COLOUR, autosave=True)
    _ablate_red_square(qtbot, crashed, squares)
    autosave = isolated_state / "autosave.segx"
    qtbot.waitUntil(autosave.is_file, timeout=10000)
    window = make_window(COLOUR, autosave=True)  # a new start (the first was killed)
    qtbot.waitUntil(lambda: window.dialogs.current is not None, timeout=5000)
    box = _question(window, "Restore session")
    assert box.text().startswith("Restore the session from ")
    next(b for b in box.buttons() if b.text() == "Restore").click()
    qtbot.waitUntil(lambda: len(window.document.ablation.history) == 1, timeout=20000)
    wait_idle(qtbot, window)
    assert window.document.ablation.active and window.ablate_button.isChecked()
    assert window.document.ablation.history[0].selection.ids == (1,)
    assert window.session_record.unsaved()  # still in no file of the user's


# 3, 4 --------------------------------------------------------------------------------
def test_a_refused_card_leaves_the_window_as_it_was_and_a_good_one_brings_its_weights(
        qtbot, make_window, squares, card_models):
    window = make_window(COLOUR)
    _open(qtbot, window, squares)
    prediction, size = window.document.store.prediction, window.model_panel.size_spin.value()
    bad = card_models.smp.parent / "bad-layer-window.toml"
    bad.write_text(card_models.smp.read_text(encoding="utf-8").replace(
        "encoder.layer4.1.conv2", "encoder.layer4.1.conv9"), "utf-8")
    assert window.cards.open_card(str(bad))  # the card reads; its model is refused
    qtbot.waitUntil(lambda: window.document.model.architecture == COLOUR,  # refused
                    timeout=20000)
    wait_idle(qtbot, window)
    assert window.model_panel.size_spin.value() == size
    assert window.document.store.prediction is prediction
    assert "[untrained weights]" in window.windowTitle()
    assert window.cards.open_card(str(card_models.smp))
    qtbot.waitUntil(lambda: window.document.store.prediction is not None
                    and window.document.store.prediction.shape == (45, 45), timeout=20000)
    wait_idle(qtbot, window)
    assert window.model_panel.weights.currentText() == "From the card"
    assert "[untrained weights]" not in window.windowTitle()
