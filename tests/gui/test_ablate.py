"""Ablate mode driven as a user would: click segments on the canvas, read what is shown.

The model is colour-dependent (tests/tiny_models.ColourSeg: red pixels are class 1
'aeroplane', green ones class 2 'bicycle', grey is background). What ablate mode holds is
the document's (``window.document.ablation``); what it shows is read from the widgets.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from gui_support import SlowDown, overlay, wait_for_prediction, wait_idle
from PIL import Image
from PySide6.QtCore import Qt
from tiny_models import COLOUR, COLOUR_SLOW

from segexplorer.cli import main as cli_main
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.models import load_model
from segexplorer.engine.segments import make_segments
from segexplorer.engine.session import Session
from segexplorer.export.ablation import ablation_report
from segexplorer.gui.ablation_panel import VIEW_AFTER, VIEW_CHANGED, VIEW_INPUT
from segexplorer.gui.document.choices import ABLATED, ATTRIBUTION

SIZE = 64
RED_SQUARE = (15, 15)  # image pixels inside the red square
GREEN_BLOCK = (45, 48)
RED_PIECE = (7, 43)  # the second, smaller red region
BACKGROUND = (60, 4)
MEAN_COLOUR = [124, 116, 104]  # Captum's zero baseline, de-normalised


@pytest.fixture(scope="module")
def squares_image(tmp_path_factory):
    arr = np.full((SIZE, SIZE, 3), 200, np.uint8)
    arr[8:24, 8:24] = (230, 20, 20)  # red square: class 1
    arr[40:56, 36:60] = (20, 220, 20)  # green block: class 2
    arr[40:48, 4:12] = (230, 20, 20)  # a second red piece
    path = tmp_path_factory.mktemp("ablate") / "squares.png"
    Image.fromarray(arr).save(path)
    return path


def _open(qtbot, make_window, image, architecture=COLOUR):
    window = make_window(architecture=architecture, size=SIZE)
    window.document.image.open(image)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)
    return window


def _click(qtbot, window, xy, shift=False):
    pos = window.canvas.image_to_widget(*xy)
    assert window.canvas.widget_to_image(pos) == xy
    modifier = Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, modifier, pos)


def _shown_selection(window):
    shown = window.document.ablation.shown
    return None if shown is None else shown.selection.ids


def _outline(window) -> np.ndarray:
    shown = window.canvas.outline_rgba()
    assert shown is not None, "no outline is shown"
    return shown


def _enter_ablate_mode(qtbot, window):
    window.activateWindow()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)
    assert window.document.ablation.active
    assert window.ablate_button.isChecked()
    assert window.document.layers.chosen == ABLATED


def _reference(image, baseline="zero", kind="class"):
    session = Session(load_model(COLOUR, "untrained", "cpu"), preprocess(load_image(image), SIZE))
    return session, make_segments(session.predict().class_map, kind)


def test_clicking_the_red_square_ablates_it(qtbot, make_window, squares_image):
    window = _open(qtbot, make_window, squares_image)
    before_map = window.document.store.prediction.class_map.copy()
    assert {0, 1, 2} == set(np.unique(before_map))
    _enter_ablate_mode(qtbot, window)
    started, passes = window.runner.started_count, window.document.store.session.forward_passes
    _click(qtbot, window, RED_SQUARE)
    qtbot.waitUntil(lambda: window.document.ablation.shown is not None, timeout=10000)
    wait_idle(qtbot, window)
    assert window.runner.started_count == started + 1  # one job ...
    assert window.document.store.session.forward_passes == passes + 1  # ... with one forward pass
    entry = window.document.ablation.shown
    outcome = entry.outcome
    assert entry.selection.ids == (1,) and not outcome.from_cache

    # class 1 ('by class' segments: both red regions) is gone; nothing else changed
    assert 1 not in np.unique(outcome.class_map_after)
    np.testing.assert_array_equal(outcome.changed, before_map == 1)
    np.testing.assert_array_equal(outcome.class_map_after[before_map != 1],
                                  before_map[before_map != 1])
    # the canvas shows the input as the model receives it: the ImageNet mean colour
    shown = overlay(window)[..., :3]
    np.testing.assert_array_equal(shown[before_map == 1],
                                  np.tile(MEAN_COLOUR, ((before_map == 1).sum(), 1)))
    np.testing.assert_array_equal(shown[before_map != 1], window.document.store.prediction.image[before_map != 1])
    # the changed-pixels view is magenta exactly where the class changed
    changed = entry.view(VIEW_CHANGED)[..., :3]
    magenta = np.all(changed == (255, 0, 255), axis=-1)
    assert magenta.any()
    np.testing.assert_array_equal(magenta, before_map == 1)
    # the selected segment is outlined (in the outline colour, on its boundary)
    outline = _outline(window)
    assert window.canvas.outline_visible()
    drawn = outline[..., 3] == 255
    assert drawn.any() and (before_map[drawn] == 1).all()
    assert drawn[8, 8:24].all()  # the square's top edge

    # the chart: class 1 dropped the most, to 0; the green class barely moved
    rows = window.ablation.panel.chart.rows()
    assert rows[0].index == 1 and rows[0].before > 0 and rows[0].after < rows[0].before
    green = next(r for r in rows if r.index == 2)
    assert abs(green.delta) <= 1e-6 * abs(green.before)
    np.testing.assert_allclose([r.after - r.before for r in rows],
                               [outcome.delta[r.index] for r in rows])
    # the summary and thumbnails
    panel = window.ablation.panel
    assert panel.summary.text().startswith("aeroplane -")
    assert "% of pixels changed class" in panel.summary.text()
    assert panel.summary.text() == entry.summary
    for view in (VIEW_INPUT, VIEW_AFTER, VIEW_CHANGED):
        assert not panel.thumbnail(view).isNull()
    assert "aeroplane" in panel.history_texts()[0]
    # the numbers equal the engine's own (and so the CLI's) for the same click
    session, segments = _reference(squares_image)
    reference = session.ablate(segments, [1])
    np.testing.assert_array_equal(outcome.after, reference.after)
    np.testing.assert_array_equal(outcome.ablated_input, reference.ablated_input)


def test_a_single_click_after_the_sweep_runs_no_job(qtbot, make_window, squares_image):
    window = _open(qtbot, make_window, squares_image)
    _enter_ablate_mode(qtbot, window)
    panel = window.ablation.panel
    assert panel.precompute_button.isVisible()
    qtbot.mouseClick(panel.precompute_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.document.store.sweep_for("class", "zero") is not None, timeout=10000)
    wait_idle(qtbot, window)
    assert not panel.precompute_button.isVisible()
    sweep = window.document.store.sweep_for("class", "zero")
    started, passes = window.runner.started_count, window.document.store.session.forward_passes

    _click(qtbot, window, RED_SQUARE)
    # shown at once: no thread, no forward pass, nothing to wait for
    entry = window.document.ablation.shown
    assert entry is not None and entry.selection.ids == (1,)
    assert entry.outcome.from_cache
    assert window.runner.started_count == started
    assert window.runner.live_thread_count() == 0 and not window.runner.is_busy()
    assert window.document.store.session.forward_passes == passes
    assert 1 not in np.unique(entry.outcome.class_map_after)
    np.testing.assert_array_equal(overlay(window)[..., :3], entry.view(VIEW_INPUT))
    # the cached answer is the sweep's row: Captum's FeatureAblation value, negated
    row = sweep.segments.row_of()[1]
    np.testing.assert_allclose(entry.outcome.delta, -sweep.table[row], rtol=1e-6)
    assert "no forward pass" in panel.details.text()
    # another segment: the same
    _click(qtbot, window, GREEN_BLOCK)
    assert window.document.ablation.shown.selection.ids == (2,)
    assert window.runner.started_count == started
    assert window.document.store.session.forward_passes == passes


def test_shift_click_ablates_two_segments_with_one_job(qtbot, make_window, squares_image):
    window = _open(qtbot, make_window, squares_image)
    _enter_ablate_mode(qtbot, window)
    _click(qtbot, window, RED_SQUARE)
    qtbot.waitUntil(lambda: _shown_selection(window) == (1,), timeout=10000)
    wait_idle(qtbot, window)
    started, passes = window.runner.started_count, window.document.store.session.forward_passes
    _click(qtbot, window, GREEN_BLOCK, shift=True)
    assert window.document.ablation.selection.ids == (1, 2)
    qtbot.waitUntil(lambda: _shown_selection(window) == (1, 2), timeout=10000)
    wait_idle(qtbot, window)
    assert window.runner.started_count == started + 1
    assert window.document.store.session.forward_passes == passes + 1
    after = window.document.ablation.shown.outcome.class_map_after
    assert set(np.unique(after)) == {0}
    # both are outlined
    drawn = _outline(window)[..., 3] == 255
    cls = window.document.store.prediction.class_map
    assert drawn[cls == 1].any() and drawn[cls == 2].any() and not drawn[cls == 0].any()
    assert "aeroplane" in window.ablation.panel.summary.text()
    assert "bicycle" in window.ablation.panel.summary.text()
    # Shift+click removes one again: that selection was computed before, no job
    _click(qtbot, window, GREEN_BLOCK, shift=True)
    assert _shown_selection(window) == (1,)
    assert window.runner.started_count == started + 1
    # and removing the last one is back to the original
    _click(qtbot, window, RED_SQUARE, shift=True)
    assert window.document.ablation.selection is None and window.document.ablation.shown is None


def test_escape_and_reset_restore_the_original(qtbot, make_window, squares_image):
    window = _open(qtbot, make_window, squares_image)
    _enter_ablate_mode(qtbot, window)
    _click(qtbot, window, RED_SQUARE)
    qtbot.waitUntil(lambda: window.document.ablation.shown is not None, timeout=10000)
    wait_idle(qtbot, window)
    assert window.canvas.overlay_visible() and window.canvas.outline_visible()
    qtbot.keyClick(window.canvas, Qt.Key.Key_Escape)
    assert window.document.ablation.selection is None and window.document.ablation.shown is None
    assert not window.canvas.overlay_visible()  # the original image itself
    assert not window.canvas.outline_visible()
    panel = window.ablation.panel
    assert panel.summary.text() == "Nothing ablated" and panel.chart.rows() == []
    assert window.document.ablation.active  # still in ablate mode
    assert len(window.document.ablation.history) == 1  # the history stays
    # the Reset button does the same
    _click(qtbot, window, GREEN_BLOCK)
    qtbot.waitUntil(lambda: window.document.ablation.shown is not None, timeout=10000)
    wait_idle(qtbot, window)
    assert panel.reset_button.isEnabled()
    qtbot.mouseClick(panel.reset_button, Qt.MouseButton.LeftButton)
    assert window.document.ablation.shown is None and not panel.reset_button.isEnabled()
    # leaving ablate mode gives the canvas back its layer and clicks pick the target again
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)
    assert not window.document.ablation.active and window.document.layers.chosen == ATTRIBUTION
    _click(qtbot, window, GREEN_BLOCK)
    assert window.document.view.target == 2 and window.document.ablation.shown is None


def test_rapid_clicks_show_only_the_last_selection(qtbot, make_window, squares_image):
    window = _open(qtbot, make_window, squares_image, architecture=COLOUR_SLOW)
    window.ablation.panel.segments.setCurrentIndex(
        window.ablation.panel.segments.findData("component"))
    assert window.document.analysis.choice.segments == "component"
    _enter_ablate_mode(qtbot, window)
    SlowDown.seconds = 0.3
    shown = []
    started = window.runner.started_count
    segments = window.document.ablation.segments_for("component")
    for xy in (RED_SQUARE, GREEN_BLOCK, RED_PIECE, BACKGROUND, GREEN_BLOCK, RED_PIECE):
        _click(qtbot, window, xy)
        shown.append(_shown_selection(window))
    last = segments.at(*RED_PIECE).id
    assert window.document.ablation.selection.ids == (last,)
    assert window.runner.live_thread_count() <= 1
    qtbot.waitUntil(lambda: _shown_selection(window) == (last,), timeout=15000)
    wait_idle(qtbot, window)
    assert set(shown) == {None}  # nothing older reached the screen while clicking
    assert [e.selection.ids for e in window.document.ablation.history] == [(last,)]
    assert window.runner.started_count - started <= 2  # the first, then only the latest
    # only the red piece is gone; the square (class 1 too) stays
    after = window.document.ablation.shown.outcome.class_map_after
    assert after[RED_PIECE[1], RED_PIECE[0]] == 0 and after[RED_SQUARE[1], RED_SQUARE[0]] == 1
    assert window.ablation.panel.summary.text().startswith("aeroplane -")


def test_a_cached_click_drops_the_slower_selection_before_it(qtbot, make_window,
                                                             squares_image):
    window = _open(qtbot, make_window, squares_image, architecture=COLOUR_SLOW)
    _enter_ablate_mode(qtbot, window)
    window.document.ablation.precompute_sweep()
    qtbot.waitUntil(lambda: window.document.store.sweep_for("class", "zero") is not None, timeout=10000)
    wait_idle(qtbot, window)
    SlowDown.seconds = 0.5
    _click(qtbot, window, RED_SQUARE)  # cached: shown at once
    _click(qtbot, window, GREEN_BLOCK, shift=True)  # two segments: a slow job
    qtbot.waitUntil(lambda: window.runner.live_thread_count() == 1, timeout=5000)
    assert window.document.ablation.is_computing()
    assert "Ablating aeroplane + bicycle" in window.ablation.panel.summary.text()
    _click(qtbot, window, GREEN_BLOCK)  # cached, while the job still runs
    assert _shown_selection(window) == (2,)
    wait_idle(qtbot, window)
    qtbot.wait(50)
    assert _shown_selection(window) == (2,)  # the pair's answer never replaced it
    assert [e.selection.ids for e in window.document.ablation.history] == [(1,), (2,)]


def test_history_revisits_and_baseline_changes_reablate(qtbot, make_window, squares_image):
    window = _open(qtbot, make_window, squares_image)
    _enter_ablate_mode(qtbot, window)
    for xy, ids in ((RED_SQUARE, (1,)), (GREEN_BLOCK, (2,))):
        _click(qtbot, window, xy)
        qtbot.waitUntil(lambda ids=ids: _shown_selection(window) == ids, timeout=10000)
        wait_idle(qtbot, window)
    history = window.ablation.panel.history
    assert history.count() == 2
    assert history.currentRow() == 1
    started = window.runner.started_count
    first = window.document.ablation.history[0]
    item = history.item(0)
    qtbot.mouseClick(history.viewport(), Qt.MouseButton.LeftButton,
                     pos=history.visualItemRect(item).center())
    assert window.document.ablation.shown is first and window.document.ablation.selection.ids == (1,)
    assert window.runner.started_count == started  # revisiting computes nothing
    np.testing.assert_array_equal(overlay(window)[..., :3], first.view(VIEW_INPUT))
    assert window.ablation.panel.summary.text() == first.summary
    # a thumbnail puts its view on the canvas
    qtbot.mouseClick(window.ablation.panel.thumb_button(VIEW_CHANGED), Qt.MouseButton.LeftButton)
    assert window.document.ablation.view == VIEW_CHANGED
    np.testing.assert_array_equal(overlay(window), first.view(VIEW_CHANGED))
    qtbot.mouseClick(window.ablation.panel.thumb_button(VIEW_INPUT), Qt.MouseButton.LeftButton)
    # another baseline ablates the same selection again, live
    panel = window.ablation.panel
    panel.baseline.setCurrentIndex(panel.baseline.findData("black"))
    assert window.document.analysis.choice.baseline == "black"
    qtbot.waitUntil(lambda: window.document.ablation.shown.selection.baseline == "black", timeout=10000)
    wait_idle(qtbot, window)
    black = window.document.ablation.shown
    assert black.selection.ids == (1,) and black.outcome.baseline == "black"
    cls = window.document.store.prediction.class_map
    assert (black.view(VIEW_INPUT)[cls == 1] == 0).all()
    assert len(window.document.ablation.history) == 3
    assert "[black]" in panel.history_texts()[2]
    # other segments: the ids name other regions now, so the selection is dropped
    panel.segments.setCurrentIndex(panel.segments.findData("component"))
    assert window.explain_panel.segments.currentData() == "component"
    assert window.document.ablation.selection is None and window.document.ablation.shown is None
    assert len(window.document.ablation.history) == 3


def test_export_writes_what_the_cli_writes(qtbot, make_window, squares_image, tmp_path):
    window = _open(qtbot, make_window, squares_image)
    _enter_ablate_mode(qtbot, window)
    _click(qtbot, window, RED_SQUARE)
    qtbot.waitUntil(lambda: window.document.ablation.shown is not None, timeout=10000)
    wait_idle(qtbot, window)
    _click(qtbot, window, GREEN_BLOCK, shift=True)
    qtbot.waitUntil(lambda: _shown_selection(window) == (1, 2), timeout=10000)
    wait_idle(qtbot, window)

    out = tmp_path / "gui"
    window.exporter.export_ablation(out)
    qtbot.waitUntil(lambda: window.exporter.exports.last_saved == out, timeout=10000)
    names = ["ablated_input.png", "changed_pixels.png", "changes.json", "segmentation_after.png"]
    assert sorted(p.name for p in out.iterdir()) == names
    cli_out = tmp_path / "cli"
    assert cli_main(["ablate", str(squares_image), "--at", "15,15", "--at", "45,48",
                     "--model", COLOUR, "--weights", "untrained", "--device", "cpu",
                     "--size", str(SIZE), "--out", str(cli_out), "--quiet"]) == 0
    for name in names[:2] + names[3:]:
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)),
                                      np.asarray(Image.open(cli_out / name)), err_msg=name)
    gui_report = json.loads((out / "changes.json").read_text())
    cli_report = json.loads((cli_out / "changes.json").read_text())
    assert gui_report["segments"] == cli_report["segments"]
    assert gui_report["summary"] == cli_report["summary"]
    for g, c in zip(gui_report["classes"], cli_report["classes"], strict=True):
        assert g["name"] == c["name"]
        assert g["delta"] == pytest.approx(c["delta"], rel=1e-5, abs=1e-6)

    # the history: both ablations in one JSON, as the CLI reports each
    path = tmp_path / "history.json"
    window.exporter.export_history(path)
    qtbot.waitUntil(lambda: window.exporter.exports.last_saved == path, timeout=10000)
    data = json.loads(path.read_text())
    assert data["image"] == str(squares_image)
    assert [a["label"] for a in data["ablations"]] == ["aeroplane", "aeroplane + bicycle"]
    entry = window.document.ablation.history[1]
    expected = ablation_report(window.document.store.session, entry.segments, entry.outcome)
    assert data["ablations"][1]["classes"] == expected["classes"]


def test_views_drawn_from_the_original_equal_full_drawings(qtbot, make_window, squares_image):
    from segexplorer.gui.document.ablation_entries import original_views
    from segexplorer.render import (
        changed_pixels_map,
        render_ablation_view,
        segmentation_overlay,
    )

    window = _open(qtbot, make_window, squares_image)
    _enter_ablate_mode(qtbot, window)
    window.ablation.panel.segments.setCurrentIndex(
        window.ablation.panel.segments.findData("component"))
    _click(qtbot, window, RED_SQUARE)
    _click(qtbot, window, GREEN_BLOCK, shift=True)
    qtbot.waitUntil(lambda: window.document.ablation.shown is not None
                    and len(window.document.ablation.shown.selection.ids) == 2, timeout=10000)
    wait_idle(qtbot, window)
    pred, outcome = window.document.store.prediction, window.document.ablation.shown.outcome
    originals = original_views(pred)
    full_after = segmentation_overlay(outcome.ablated_input, outcome.class_map_after, 0.6)
    full_changed = changed_pixels_map(pred.class_map, outcome.class_map_after, pred.image)
    for view, full in ((VIEW_AFTER, full_after), (VIEW_CHANGED, full_changed)):
        drawn = render_ablation_view(view, pred.image, pred.class_map, outcome.ablated_input,
                                     outcome.class_map_after, outcome.changed, originals)
        np.testing.assert_array_equal(drawn, full)
    np.testing.assert_array_equal(window.document.ablation.shown.view(VIEW_AFTER), full_after)
    # the canvas shows the full-size view the thumbnail stands for
    qtbot.mouseClick(window.ablation.panel.thumb_button(VIEW_AFTER), Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(overlay(window), full_after)


def test_hovering_in_ablate_mode_presents_only_the_canvas_and_the_ablation_panel(
        qtbot, make_window, squares_image):
    window = _open(qtbot, make_window, squares_image)
    _enter_ablate_mode(qtbot, window)
    from segexplorer.render import selection_outline

    calls = window.presenters.calls
    segments = window.document.ablation.segments_for("class")
    for xy in (GREEN_BLOCK, RED_SQUARE, BACKGROUND):
        before = dict(calls)
        window.canvas.hovered.emit(*xy)  # the cursor moves onto another segment
        expected = selection_outline(segments.ids, (segments.at(*xy).id,),
                                     colour=(255, 255, 255))
        qtbot.waitUntil(lambda expected=expected: window.canvas.outline_visible() and (
            window.canvas.outline_rgba() == expected).all(), timeout=2000)
        presented = {name for name, n in calls.items() if n != before.get(name, 0)}
        assert presented == {"canvas", "ablation"}, presented
        assert all(calls[name] - before.get(name, 0) == 1 for name in presented)
    # the status bar reads the pixel under the cursor all along
    assert "background" in window.status.hover_label.text()
