"""The registry's methods in the window, driven through its widgets."""

from __future__ import annotations

import numpy as np
from gui_support import SIZE, SLOW, SlowDown, overlay, wait_for_prediction, wait_idle
from PySide6.QtCore import Qt

from segexplorer.engine.attribution import compute
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.methods import METHODS, MethodOptions
from segexplorer.engine.models import load_model
from segexplorer.engine.session import Session
from segexplorer.gui.document.choices import METHOD_LABELS
from segexplorer.gui.document.explain_view import GUIDED_NOTE
from segexplorer.render import render_attribution


def _open(qtbot, window, path):
    window.document.image.open(path)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)


def _choose(window, method: str) -> None:
    combo = window.explain_panel.method
    combo.setCurrentIndex(combo.findData(method))


def test_the_method_list_offers_every_registered_method(make_window):
    window = make_window(show=False)
    combo = window.explain_panel.method
    assert [combo.itemData(i) for i in range(combo.count())] == list(METHODS)
    assert [combo.itemText(i) for i in range(combo.count())] == list(METHOD_LABELS.values())


def test_shapley_shows_its_map_values_and_pairs(qtbot, make_window, blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    panel = window.explain_panel
    assert not panel.samples_spin.isVisible() and not panel.shapley.isVisible()
    _choose(window, "shapley")
    assert panel.samples_spin.isVisible() and not panel.steps_spin.isVisible()
    qtbot.waitUntil(lambda: window.document.store.has_result("shapley"), timeout=20000)
    wait_idle(qtbot, window)
    session = Session(load_model("tiny", "untrained", "cpu"),
                      preprocess(load_image(blocks_image), SIZE))
    expected = compute(session, "shapley", None, MethodOptions())
    target = window.document.view.target
    drawn = render_attribution(expected.maps[target], session.image.rgb, "blended_heat_map",
                               "all").rgba
    np.testing.assert_array_equal(overlay(window), drawn)
    qtbot.waitUntil(panel.shapley.isVisible, timeout=5000)
    values = panel.shapley.values
    assert values.rowCount() == expected.shapley.segments.count
    assert "exact" in panel.shapley.heading.text()
    pairs = expected.shapley.top_pairs(target, 5)
    assert panel.shapley.pairs.rowCount() == len(pairs)
    assert "Shapley values" in panel.status.text()


def test_integrated_gradients_options_and_a_costly_run_waits_for_compute(
        qtbot, make_window, blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    window.document.analysis.auto_run_seconds = 0.0  # every method is costly here
    panel = window.explain_panel
    _choose(window, "ig")
    assert panel.steps_spin.isVisible() and panel.integral_combo.isVisible()
    panel.steps_spin.setValue(6)
    qtbot.wait(50)
    assert not window.runner.is_busy() and not window.document.store.has_result("ig")
    assert "images through the model (6 forward," in panel.status.text()
    assert panel.compute.isEnabled()
    qtbot.mouseClick(panel.compute, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.document.store.has_result("ig"), timeout=20000)
    assert panel.status.text().startswith("Integrated gradients: ")
    assert "images through the model (6 forward," in panel.status.text()


def test_guided_gradcam_warns_about_the_randomisation_check(qtbot, make_window, blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    note = window.explain_panel.method_note
    assert not note.isVisible()
    _choose(window, "guided_gradcam")
    qtbot.waitUntil(note.isVisible, timeout=5000)
    assert note.text() == GUIDED_NOTE
    qtbot.waitUntil(lambda: window.document.store.has_result("guided_gradcam"), timeout=20000)


def test_cancel_a_running_method_then_compute_runs_it(qtbot, make_window, blocks_image):
    window = make_window(architecture=SLOW)
    _open(qtbot, window, blocks_image)
    SlowDown.seconds = 0.3
    _choose(window, "occlusion")
    qtbot.waitUntil(lambda: window.status.cancel_button.isVisible(), timeout=5000)
    qtbot.waitUntil(lambda: "Occlusion" in window.status.job_label.text(), timeout=5000)
    qtbot.mouseClick(window.status.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.runner.is_busy(), timeout=3000)
    assert not window.document.store.has_result("occlusion")
    assert "cancelled" in window.explain_panel.status.text()
    SlowDown.seconds = 0.0
    qtbot.mouseClick(window.explain_panel.compute, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.document.store.has_result("occlusion"), timeout=20000)
