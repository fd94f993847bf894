"""The comparison in the window (Model > Compare With...), through its widgets: model B
beside A, the split view with linked zoom and pan, the per-class table, ablating in both
models with a click and with the brush, closing, a pair the device cannot hold, and a
session that keeps the comparison. Tiny untrained models at a small working size; B is
the same model with one classifier row scaled (as tests/test_compare.py's pair); the
numbers are checked against the engine's own calls on the same models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gui_support import TINY, wait_for_prediction, wait_idle
from PySide6.QtCore import QPoint, Qt

from segexplorer.engine.analysis import ExplainRequest
from segexplorer.engine.budget import ENV_VAR
from segexplorer.engine.compare_run import ablate_both, compare_sessions, load_pair
from segexplorer.engine.image import load_image
from segexplorer.engine.models import build_untrained, get_architecture
from segexplorer.gui.document.formatting import format_share

SIZE = 48
SCALED_CLASS = 18


@pytest.fixture(scope="module")
def scaled_weights(tmp_path_factory) -> Path:
    state = build_untrained(get_architecture(TINY)).state_dict()
    state["head.weight"][SCALED_CLASS] *= 1.2
    state["head.bias"][SCALED_CLASS] *= 1.2
    path = tmp_path_factory.mktemp("scaled") / "tiny_sofa_x1.2.pt"
    torch.save(state, path)
    return path


def engine_pair(image: Path, weights: Path):
    a = ExplainRequest(image=str(image), model=TINY, weights="untrained", device="cpu",
                       size=SIZE, methods=("gradcam",))
    b = ExplainRequest(image=str(image), model=TINY, weights=str(weights), device="cpu",
                       size=SIZE, methods=("gradcam",))
    pair = load_pair(a, b, load_image(image))
    sa, sb = pair.sessions()
    return compare_sessions(sa, sb, pair.request_a, pair.request_b), (sa, sb)


def opened(qtbot, make_window, image: Path):
    window = make_window(size=SIZE)
    window.document.image.open(image)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)
    return window


def compare_with(qtbot, window, weights: Path) -> None:
    window.compare_commands.compare_action.trigger()  # Model > Compare With...
    # B's Model panel: Load weights file... (the file dialog sets the weights)
    window.compare_panel.model_panel.weights.setCurrentIndex(
        window.compare_panel.model_panel.weights.findData("untrained"))
    window.document.comparison.model.weights = str(weights)
    qtbot.waitUntil(lambda: window.document.comparison.result() is not None, timeout=30000)
    wait_idle(qtbot, window)


def click(qtbot, canvas, xy, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    pos = canvas.image_to_widget(*xy)
    assert canvas.widget_to_image(pos) == xy
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, modifier, pos)


def test_compare_with_shows_both_models_the_difference_and_the_table(
        qtbot, make_window, blocks_image, scaled_weights):
    window = opened(qtbot, make_window, blocks_image)
    assert not window.compare_commands.close_action.isEnabled()
    compare_with(qtbot, window, scaled_weights)
    assert window.area.stack.currentWidget() is window.compare_view
    assert window.compare_dock.isVisible()
    assert window.compare_commands.close_action.isEnabled()
    # B's choosers show B's choice, and neither device nor fast mode (A's are used)
    panel = window.compare_panel.model_panel
    assert panel.weights.currentData() == str(scaled_weights)
    assert not panel.device.isVisibleTo(window) and not panel.fast.isVisibleTo(window)
    assert "Both on cpu" in window.compare_panel.memory.text()
    # three views, each drawing over the image
    for canvas in window.compare_view.canvases:
        assert canvas.overlay_visible() and canvas.image_size() == (128, 96)
    assert window.compare_view.maps_bar.tick_labels()
    assert window.compare_view.third_bar.tick_labels()  # B - A in attribution units
    # the table: the engine's figures, most changed first
    engine, _ = engine_pair(blocks_image, scaled_weights)
    rows = window.compare_panel.rows()
    assert [r[0] for r in rows] == [c.name for c in engine.classes]
    first = engine.classes[0]
    assert rows[0][1] == f"{format_share(first.share_a)} \u2192 {format_share(first.share_b)}"
    assert rows[0][2] == f"{first.iou:.3f}"
    # hovering reads both models at once
    canvas = window.compare_view.canvases[1]
    qtbot.mouseMove(canvas.viewport(), canvas.image_to_widget(30, 20))
    qtbot.waitUntil(lambda: "A:" in window.status.hover_label.text()
                    and "B:" in window.status.hover_label.text())
    window.grab().save("/tmp/i23gui/test_compare_window.png") if Path("/tmp/i23gui").is_dir() \
        else None


def test_a_table_row_and_a_click_pick_the_class_both_views_show(
        qtbot, make_window, blocks_image, scaled_weights):
    window = opened(qtbot, make_window, blocks_image)
    compare_with(qtbot, window, scaled_weights)
    doc, table = window.document, window.compare_panel.table
    last = table.rowCount() - 1
    name = table.item(last, 0).text()
    table.selectRow(last)
    qtbot.waitUntil(lambda: doc.view.target is not None
                    and doc.store.prediction.categories[doc.view.target] == name)
    assert f"'{name}'" in window.compare_view.maps_caption.text()
    # a click outside ablate mode picks the class under it (here in B's view)
    pred = doc.comparison.held().prediction
    click(qtbot, window.compare_view.canvases[1], (30, 20))
    h, w = pred.class_map.shape
    expected = pred.categories[pred.class_map[int(20.5 * h / 96), int(30.5 * w / 128)]]
    qtbot.waitUntil(lambda: doc.store.prediction.categories[doc.view.target] == expected)
    # the third view shows the changed pixels when asked
    combo = window.compare_view.third
    combo.setCurrentIndex(combo.findData("changed"))
    qtbot.waitUntil(lambda: "-&gt;" in window.compare_view.third_caption.text())


def test_zoom_and_pan_are_linked(qtbot, make_window, blocks_image, scaled_weights):
    window = opened(qtbot, make_window, blocks_image)
    compare_with(qtbot, window, scaled_weights)
    a, b, d = window.compare_view.canvases
    b.zoom_in()
    b.zoom_in()
    for canvas in (a, d):
        assert canvas.zoom() == pytest.approx(b.zoom())
    b.horizontalScrollBar().setValue(b.horizontalScrollBar().maximum())
    centre = b.mapToScene(b.viewport().rect().center())
    for canvas in (a, d):
        other = canvas.mapToScene(canvas.viewport().rect().center())
        assert abs(other.x() - centre.x()) <= 1.5 and abs(other.y() - centre.y()) <= 1.5
    window.commands.fit.trigger()  # View > Fit to Window fits all three
    assert all(c.is_fit() for c in (a, b, d))


def test_ablate_mode_ablates_a_click_and_a_brush_stroke_in_both_models(
        qtbot, make_window, blocks_image, scaled_weights):
    window = opened(qtbot, make_window, blocks_image)
    compare_with(qtbot, window, scaled_weights)
    doc = window.document
    window.ablate_button.click()
    assert doc.ablation.active
    assert window.compare_dock.isVisible()
    click(qtbot, window.compare_view.canvases[0], (30, 20))
    qtbot.waitUntil(lambda: doc.comparison.shown() is not None, timeout=20000)
    wait_idle(qtbot, window)
    _, (sa, sb) = engine_pair(blocks_image, scaled_weights)
    common = doc.comparison.common_segments()
    expected = ablate_both(sa, sb, common, [common.at(30, 20).id])
    charts = window.compare_panel.charts
    for chart, side in zip(charts, "ab", strict=True):
        assert chart.isVisibleTo(window)
        outcome = expected.outcome(side)
        shown = {r.index: (r.before, r.after) for r in chart.rows()}
        assert shown, "the chart shows the scores"
        for index, (before, after) in shown.items():
            assert before == pytest.approx(float(outcome.before[index]))
            assert after == pytest.approx(float(outcome.after[index]))
    for canvas in window.compare_view.canvases:
        assert canvas.outline_visible()  # the ablated segment, in every view
    # the brush: a stroke on B's view ablates the region in both models
    window.ablation.panel.tool_button("brush").click()
    canvas = window.compare_view.canvases[1]
    assert canvas.tool == "brush"
    viewport = canvas.viewport()
    start, end = canvas.image_to_widget(70, 60), canvas.image_to_widget(110, 70)
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    for t in np.linspace(0, 1, 6):
        qtbot.mouseMove(viewport, QPoint(round(start.x() + t * (end.x() - start.x())),
                                         round(start.y() + t * (end.y() - start.y()))))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)
    qtbot.waitUntil(lambda: doc.comparison.shown() is not None
                    and doc.comparison.shown().key.selection.kind.startswith("region"),
                    timeout=20000)
    entry = doc.comparison.shown()
    assert entry.ablation.a is not None and entry.ablation.b is not None
    assert "Ablated in both models" in window.compare_panel.ablation_status.text()
    # Esc: back to the original in both models
    window.commands.cancel.trigger()
    qtbot.waitUntil(lambda: doc.comparison.selection is None)


def test_closing_the_comparison_returns_to_one_model(qtbot, make_window, blocks_image,
                                                     scaled_weights):
    window = opened(qtbot, make_window, blocks_image)
    compare_with(qtbot, window, scaled_weights)
    qtbot.mouseClick(window.compare_panel.close_button, Qt.MouseButton.LeftButton)
    assert window.area.stack.currentWidget() is window.canvas
    assert window.area.footer.isVisibleTo(window)
    doc = window.document
    assert not doc.comparison.active and doc.comparison.held() is None
    assert not window.compare_commands.close_action.isEnabled()
    # one model again: the canvas shows A's explanation, its menu commands work on it
    window.commands.zoom_in.trigger()
    assert not window.canvas.is_fit()


def test_a_pair_the_device_cannot_hold_is_refused_in_one_line(
        qtbot, make_window, blocks_image, scaled_weights, monkeypatch):
    monkeypatch.setenv(ENV_VAR, repr(4 / 2**20))  # a 4 KiB budget
    window = opened(qtbot, make_window, blocks_image)
    window.compare_commands.compare_action.trigger()
    window.document.comparison.model.weights = str(scaled_weights)
    qtbot.waitUntil(lambda: window.status.last_error is not None, timeout=20000)
    line = window.status.last_error
    assert line.startswith("The two models do not fit on cpu") and "\n" not in line
    qtbot.waitUntil(lambda: window.compare_panel.status.text() == line)
    assert window.compare_panel.rows() == []


def test_a_saved_session_reopens_the_comparison(qtbot, make_window, blocks_image,
                                                scaled_weights, tmp_path):
    from segexplorer.gui.document.sessions import save

    window = opened(qtbot, make_window, blocks_image)
    compare_with(qtbot, window, scaled_weights)
    rows = window.compare_panel.rows()
    path = tmp_path / "pair.segx"
    save(window.document, path)
    qtbot.waitUntil(path.is_file)
    other = make_window(size=SIZE)
    other.exporter.open_session(path)  # File > Open Session...
    qtbot.waitUntil(lambda: other.compare_panel.rows() == rows, timeout=30000)
    assert other.area.stack.currentWidget() is other.compare_view
    assert other.compare_panel.model_panel.weights.currentData() == str(scaled_weights)
