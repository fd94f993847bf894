"""The Evaluate panel, driven through its widgets: choices, cost, Run, the curves, the
areas with the best marked, the randomisation strip, the verdicts, Cancel and exports."""

from __future__ import annotations

import json
import math

import pytest
from gui_support import SIZE, SLOW, SlowDown, wait_for_prediction, wait_idle
from PySide6.QtCore import Qt

from segexplorer.engine.evaluation import evaluate
from segexplorer.engine.evaluation_plan import EvaluationSettings
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.methods import MethodOptions
from segexplorer.engine.models import load_model
from segexplorer.engine.session import Session
from segexplorer.render.evaluation import CURVE_ORDER

SETTINGS = dict(pixel_steps=4, chance_runs=3)


def _open(qtbot, window, path):
    window.document.image.open(path)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)


def _check_only(panel, methods):
    for i in range(panel.methods.count()):
        item = panel.methods.item(i)
        wanted = item.data(Qt.ItemDataRole.UserRole) in methods
        item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)


def _set_up(qtbot, window, image, methods=("gradcam", "ablation")):
    _open(qtbot, window, image)
    window.evaluate_dock.raise_()
    panel = window.evaluate_panel
    _check_only(panel, methods)
    panel.pixel_steps.setValue(SETTINGS["pixel_steps"])
    panel.chance_runs.setValue(SETTINGS["chance_runs"])
    panel.sensitivity.setChecked(False)  # the slowest part; the document tests cover it
    return panel


def test_the_panel_runs_on_request_and_shows_the_engines_numbers(qtbot, make_window,
                                                                 blocks_image, tmp_path):
    window = make_window()
    panel = _set_up(qtbot, window, blocks_image)
    assert panel.run.isEnabled()
    assert "for the curves" in panel.cost.text()
    assert "Press Run" in panel.status.text()
    assert not window.runner.is_busy()  # never by itself
    assert not panel.save_curves.isEnabled() and not panel.save_numbers.isEnabled()

    qtbot.mouseClick(panel.run, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Evaluated 2 methods" in panel.status.text(), timeout=60000)
    wait_idle(qtbot, window)
    assert not panel.run.isEnabled()  # done for these choices
    # the answer scrolls into view: the whole curves canvas (at 1100 x 720 it starts below
    # the fold of the dock)
    canvas = panel.canvas
    qtbot.waitUntil(lambda: canvas.visibleRegion().boundingRect().height() == canvas.height(),
                    timeout=5000)
    assert panel.save_curves.isEnabled() and panel.save_numbers.isEnabled()

    # the same numbers as the engine's own call on the same model and input
    session = Session(load_model("tiny", "untrained", "cpu"),
                      preprocess(load_image(blocks_image), SIZE))
    expected = evaluate(session, ("gradcam", "ablation"), None, MethodOptions(),
                        EvaluationSettings(**SETTINGS, sensitivity=False))
    target = window.document.view.target
    assert target in expected.targets
    table = panel.areas
    # short names in the headers (the numbers get the room), the whole name in the tooltip
    assert [table.verticalHeaderItem(r).toolTip().split(":")[0]
            for r in range(table.rowCount())] == [
        "Layer Grad-CAM", "Feature ablation", "Chance"][:table.rowCount()]
    for r, method in enumerate(("gradcam", "ablation")):
        for c, name in enumerate(CURVE_ORDER):
            auc = expected.result(method, target).curves[name].auc
            shown = table.item(r, c).text()
            assert math.isclose(float(shown), auc, rel_tol=0, abs_tol=0.0051), (method, name)
            best = method in expected.best_methods(target, name)
            assert table.item(r, c).font().bold() == best
    for c, name in enumerate(CURVE_ORDER):
        chance = expected.chance[target][name].auc_mean
        assert math.isclose(float(table.item(2, c).text()), chance, rel_tol=0, abs_tol=0.0051)

    # the verdicts, one per method, and the randomisation strip of the chosen method
    verdicts = panel.verdicts.text()
    for method in ("gradcam", "ablation"):
        assert expected.verdict(method, target).split(" (")[0] in verdicts
    captions = [label.text() for label in panel.strip.findChildren(type(panel.status),
                                                                   "stripCaption")]
    assert captions[0] == "original"
    assert len(captions) == 1 + len(expected.result("gradcam", target).mprt)

    # the curves canvas draws the chosen curve; another class is a lookup, not a job
    assert panel.figure.axes and "Deletion by pixel" in panel.figure.axes[0].get_title()
    panel.curve.setCurrentIndex(panel.curve.findData(""))
    assert len(panel.figure.axes) == 4
    other = next(c for c in expected.targets if c != target)
    window.document.view.target = other
    qtbot.waitUntil(lambda: table.item(0, 0) is not None and math.isclose(
        float(table.item(0, 0).text()),
        expected.result("gradcam", other).curves["deletion_segments"].auc,
        rel_tol=0, abs_tol=0.0051), timeout=5000)
    assert not window.runner.is_busy()

    # exports: numbers as JSON and CSV, curves as SVG
    window.exporter.export_evaluation(tmp_path / "numbers.json")
    window.exporter.export_evaluation(tmp_path / "numbers.csv")
    window.exporter.export_evaluation(tmp_path / "curves.svg")
    qtbot.waitUntil(lambda: all((tmp_path / n).exists()
                                for n in ("numbers.json", "numbers.csv", "curves.svg")),
                    timeout=20000)
    wait_idle(qtbot, window)
    data = json.loads((tmp_path / "numbers.json").read_text())
    saved = data["targets"][str(other)]["gradcam"]["deletion_segments"]["auc"]
    assert saved == pytest.approx(
        expected.result("gradcam", other).curves["deletion_segments"].auc, rel=1e-5)
    assert (tmp_path / "curves.svg").read_text().lstrip().startswith("<?xml")
    assert "gradcam" in (tmp_path / "numbers.csv").read_text()


def test_changing_a_setting_asks_for_a_new_run(qtbot, make_window, blocks_image):
    window = make_window()
    panel = _set_up(qtbot, window, blocks_image, methods=("gradcam",))
    qtbot.mouseClick(panel.run, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Evaluated 1 method" in panel.status.text(), timeout=60000)
    panel.pixel_steps.setValue(6)
    assert panel.run.isEnabled() and "Press Run" in panel.status.text()
    assert panel.areas.rowCount() == 0
    panel.pixel_steps.setValue(SETTINGS["pixel_steps"])  # back: the result is kept
    assert not panel.run.isEnabled() and "Evaluated 1 method" in panel.status.text()
    _check_only(panel, ())
    assert not panel.run.isEnabled() and "at least one method" in panel.cost.text()


def test_cancel_stops_the_evaluation_and_run_starts_it_again(qtbot, make_window,
                                                             blocks_image):
    window = make_window(SLOW)
    panel = _set_up(qtbot, window, blocks_image, methods=("gradcam",))
    SlowDown.seconds = 0.2
    qtbot.mouseClick(panel.run, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Evaluating" in panel.status.text(), timeout=5000)
    assert window.status.cancel_button.isEnabled()
    qtbot.mouseClick(window.status.cancel_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: "cancelled" in panel.status.text(), timeout=5000)
    assert panel.run.isEnabled() and panel.areas.rowCount() == 0
    SlowDown.reset()
    qtbot.mouseClick(panel.run, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Evaluated 1 method" in panel.status.text(), timeout=60000)


def test_the_quick_preview_check_box_sets_the_quick_settings_and_says_what_it_skips(
        qtbot, make_window, blocks_image):
    from segexplorer.engine.evaluation_plan import QUICK, QUICK_DESCRIPTION

    window = make_window()
    _open(qtbot, window, blocks_image)
    window.evaluate_dock.raise_()
    panel = window.evaluate_panel
    _check_only(panel, ("gradcam",))
    assert not panel.quick.isChecked() and "Quick preview" not in panel.cost.text()
    panel.quick.setChecked(True)
    assert window.document.evaluation.settings == QUICK
    assert panel.pixel_steps.value() == QUICK.pixel_steps
    assert panel.chance_runs.value() == QUICK.chance_runs
    assert not panel.mprt.isChecked() and not panel.sensitivity.isChecked()
    qtbot.waitUntil(lambda: panel.cost.text().startswith(QUICK_DESCRIPTION))
    panel.pixel_steps.setValue(QUICK.pixel_steps + 2)  # by hand: no longer the preset
    assert not panel.quick.isChecked()
    qtbot.waitUntil(lambda: panel.cost.text().startswith("Not the full evaluation"))
    panel.quick.setChecked(True)
    panel.quick.setChecked(False)  # the full evaluation's defaults
    assert window.document.evaluation.settings == EvaluationSettings()
    assert panel.mprt.isChecked() and panel.pixel_steps.value() == 20
