"""The main window driven as a user would, checking what it shows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gui_support import (
    BROKEN,
    SIZE,
    SLOW,
    TINY,
    SlowDown,
    choose,
    overlay,
    wait_for_prediction,
    wait_idle,
)
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage

from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.models import load_model
from segexplorer.engine.segments import make_segments
from segexplorer.engine.session import Session
from segexplorer.export.bundle import class_file_stem
from segexplorer.gui.document.choices import (
    ABLATED,
    ABLATION,
    ACTIVATION,
    ATTRIBUTION,
    GRADCAM,
    SEGMENTATION,
    ModelChoice,
)
from segexplorer.gui.imaging import from_qimage, to_qimage
from segexplorer.gui.main_window import MainWindow
from segexplorer.render import composite_over, decode_segmap, hide_target, render_attribution


def _reference(path, size=SIZE, layer=None):
    """The engine's own answer for the tiny model, computed without the window."""
    session = Session(load_model(TINY, "untrained", "cpu"), preprocess(load_image(path), size))
    prediction = session.predict()
    return session, prediction, session.gradcam(None, layer=layer)


def _open(qtbot, window, path):
    window.document.image.open(path)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)


def test_open_image_shows_prediction_and_lists_classes(qtbot, make_window, blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    _, reference, gradcam = _reference(blocks_image)
    assert window.canvas.image_size() == (reference.shape[1], reference.shape[0])
    assert window.classes_panel.listed_classes() == reference.present_classes
    np.testing.assert_array_equal(window.document.store.prediction.class_map, reference.class_map)
    # Largest share first, with swatches and percentages.
    item = window.classes_panel.item_for(reference.present_classes[0])
    share = reference.share(reference.present_classes[0])
    assert item.text(0) == reference.categories[reference.present_classes[0]]
    assert item.text(1) == f"{share * 100:.1f} %"
    assert not item.icon(0).isNull()
    # The target defaults to the largest foreground class; Grad-CAM is shown for it.
    assert window.document.view.target == reference.present_classes[0]
    assert window.document.layers.chosen == ATTRIBUTION and window.document.store.has_result(GRADCAM)
    expected = render_attribution(gradcam.upsampled[window.document.view.target], reference.image,
                                  "blended_heat_map", "all").rgba
    np.testing.assert_array_equal(overlay(window), expected)
    # one forward pass gave the prediction and every class's Grad-CAM
    assert window.document.store.session.forward_passes == 1
    assert "blocks.png" in window.windowTitle() and "untrained" in window.windowTitle()
    assert window.banner.isVisible()  # the untrained state is on screen
    assert str(blocks_image.resolve()) in window.prefs.recent_files()


def test_picking_a_class_redraws_without_a_job(qtbot, make_window, blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    _, reference, gradcam = _reference(blocks_image)
    other = reference.present_classes[1]
    started = window.runner.started_count
    item = window.classes_panel.item_for(other)
    tree = window.classes_panel.tree
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton,
                     pos=tree.visualItemRect(item).center())
    assert window.document.view.target == other
    assert window.runner.started_count == started  # view-only: no job
    expected = render_attribution(gradcam.upsampled[other], reference.image,
                                  "blended_heat_map", "all").rgba
    np.testing.assert_array_equal(overlay(window), expected)
    assert reference.categories[other] in window.explain_panel.target_label.text()


def test_clicking_a_segment_on_the_canvas_makes_it_the_target(qtbot, make_window,
                                                              blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    class_map = window.document.store.prediction.class_map
    wanted = window.document.store.prediction.present_classes[2]
    ys, xs = np.nonzero(class_map == wanted)
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])
    pos = window.canvas.image_to_widget(x, y)
    assert window.canvas.widget_to_image(pos) == (x, y)
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert window.document.view.target == wanted
    assert window.classes_panel.target() == wanted
    # Hovering reads the class and score under the cursor.
    qtbot.mouseMove(window.canvas.viewport(), pos)
    qtbot.waitUntil(lambda: window.document.store.prediction.categories[wanted] in window.status.hover_label.text())
    ((_, score, _),) = window.document.store.prediction.describe_pixel(x, y)
    assert f"score {score:.3g}" in window.status.hover_label.text()
    assert f"x {x}, y {y}" in window.status.hover_label.text()


def test_view_options_redraw_at_once_and_match_captum_drawing(qtbot, make_window,
                                                              blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    _, reference, gradcam = _reference(blocks_image)
    target = window.document.view.target
    attr = gradcam.upsampled[target]
    started = window.runner.started_count
    panel = window.explain_panel

    choose(panel.sign, "positive")
    expected = render_attribution(attr, reference.image, "blended_heat_map", "positive")
    np.testing.assert_array_equal(overlay(window), expected.rgba)
    ticks = window.colorbar.ticks()
    assert ticks[0] == (0.0, 0.0)
    assert ticks[-1][1] == pytest.approx(expected.normalized.scale)

    choose(panel.view, "masked_image")  # Captum cannot mask with sign "all"
    assert panel.sign.currentData() == "positive"
    assert not panel.sign.model().item(panel.sign.findData("all")).isEnabled()
    np.testing.assert_array_equal(
        overlay(window), render_attribution(attr, reference.image, "masked_image",
                                             "positive").rgba)

    choose(panel.view, "alpha_scaling")
    choose(panel.sign, "negative")
    panel.outlier.setValue(10.0)
    qtbot.waitUntil(lambda: window.document.view.choice.outlier == 10.0)
    rendered = render_attribution(attr, reference.image, "alpha_scaling", "negative", 10.0)
    np.testing.assert_array_equal(overlay(window), composite_over(rendered.rgba))

    panel.hide_target.setChecked(True)
    hidden = hide_target(attr, reference.class_map, target)
    rendered = render_attribution(hidden, reference.image, "alpha_scaling", "negative", 10.0)
    np.testing.assert_array_equal(overlay(window), composite_over(rendered.rgba))

    # Opacity and layers are view-only too.
    window.opacity.setValue(40)
    assert window.canvas.overlay_opacity() == pytest.approx(0.4)
    window.document.layers.chosen = SEGMENTATION
    np.testing.assert_array_equal(overlay(window)[..., :3],
                                  decode_segmap(reference.class_map))
    assert window.opacity.value() == 60  # each layer keeps its own opacity

    # The layer's activation comes from the same Grad-CAM pass: still no job.
    window.document.layers.chosen = ATTRIBUTION
    panel.hide_target.setChecked(False)
    choose(panel.view, "heat_map")
    choose(panel.method, ACTIVATION)
    np.testing.assert_array_equal(
        overlay(window), render_attribution(gradcam.activation_upsampled, reference.image,
                                             "heat_map", "negative", 10.0).rgba)
    assert window.runner.started_count == started


def test_feature_ablation_sweep_serves_every_target(qtbot, make_window, blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    session, reference, _ = _reference(blocks_image)
    choose(window.explain_panel.method, ABLATION)
    assert window.document.jobs.is_running("sweep")
    qtbot.waitUntil(lambda: window.document.store.has_result(ABLATION), timeout=20000)
    sweep = session.sweep(make_segments(reference.class_map, "class"))
    started = window.runner.started_count
    for target in reference.present_classes[:3]:
        window.document.view.target = target
        expected = render_attribution(sweep.attribution_map(target), reference.image,
                                      "blended_heat_map", "all").rgba
        np.testing.assert_array_equal(overlay(window), expected)
    assert window.runner.started_count == started
    assert "Sweep: 5 segments" in window.explain_panel.status.text()
    # Side by side: the image and the three signs, each with its colour bar.
    window.explain_panel.side_by_side.setChecked(True)
    titles = [p.title for p in window.multi_view.panels()]
    assert titles == ["Image", "Blended heat map, all", "Blended heat map, positive",
                      "Blended heat map, negative"]
    assert window.stack.currentWidget() is window.multi_view


def test_ablated_input_layer_shows_the_target_replaced_by_the_baseline(qtbot, make_window,
                                                                       blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    window.document.layers.chosen = ABLATED
    qtbot.waitUntil(lambda: window.canvas.overlay_visible(), timeout=10000)
    shown = overlay(window)[..., :3]
    mask = window.document.store.prediction.class_map == window.document.view.target
    mean = np.round(np.array([0.485, 0.456, 0.406]) * 255).astype(int)
    assert np.abs(shown[mask].astype(int) - mean).max() <= 1  # Captum's zero baseline
    np.testing.assert_array_equal(shown[~mask], window.document.image.prepared.rgb[~mask])


def test_cancel_a_running_sweep(qtbot, make_window, blocks_image):
    window = make_window(architecture=SLOW)
    _open(qtbot, window, blocks_image)
    SlowDown.seconds = 0.4
    choose(window.explain_panel.method, ABLATION)
    qtbot.waitUntil(lambda: window.status.cancel_button.isVisible(), timeout=5000)
    qtbot.waitUntil(lambda: "Ablat" in window.status.job_label.text(), timeout=5000)
    qtbot.mouseClick(window.status.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.runner.is_busy(), timeout=2000)
    assert not window.document.store.has_result(ABLATION)
    assert not window.status.cancel_button.isVisible()
    assert "cancelled" in window.explain_panel.status.text()
    assert window.explain_panel.compute.isEnabled()
    # It does not restart by itself; Compute runs it again.
    window.document.view.target = window.document.store.prediction.present_classes[1]
    assert not window.runner.is_busy()
    SlowDown.seconds = 0.0
    qtbot.mouseClick(window.explain_panel.compute, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.document.store.has_result(ABLATION), timeout=20000)


def test_export_view_copy_figure_and_all(qtbot, make_window, blocks_image, tmp_path):
    window = make_window()
    _open(qtbot, window, blocks_image)
    view = tmp_path / "view.png"
    window.exporter.export_view(view)
    qtbot.waitUntil(view.is_file, timeout=10000)
    saved = np.asarray(Image.open(view))
    assert saved.shape == (96, 128, 4)  # the image's own resolution
    np.testing.assert_array_equal(saved, window.exporter.current_view_image())
    working = tmp_path / "working.png"
    window.exporter.export_view(working, working=True)
    qtbot.waitUntil(working.is_file, timeout=10000)
    h, w = window.document.store.prediction.shape
    assert np.asarray(Image.open(working)).shape == (h, w, 4)  # the model's pixels

    window.commands.copy.trigger()
    copied = QGuiApplication.clipboard().image()
    assert (copied.width(), copied.height()) == (128, 96)

    figure = tmp_path / "figure.svg"
    window.exporter.export_figure(figure)
    qtbot.waitUntil(figure.is_file, timeout=20000)
    assert "<svg" in figure.read_text()[:500]

    folder = tmp_path / "all"
    window.exporter.export_all(folder)
    qtbot.waitUntil(lambda: (folder / "report.json").is_file(), timeout=20000)
    wait_idle(qtbot, window)  # the job's result reaches the window after its last file
    report = json.loads((folder / "report.json").read_text())
    assert report["untrained"] is True and report["model"] == TINY
    assert report["present_classes"] == window.document.store.prediction.present_classes
    names = {p.name for p in folder.iterdir()}
    assert {"segmentation.png", "attributions.npz"} <= names
    for kind in ("gradcam", "ablation"):
        assert {class_file_stem(kind, c, report["class_names"][c]) + ".png"
                for c in report["present_classes"]} <= names
    # The sweep that Export all needed is now cached for the window too.
    choose(window.explain_panel.method, ABLATION)
    assert window.document.store.has_result(ABLATION)


def test_layer_picker_shows_shapes_and_changes_the_gradcam_layer(qtbot, make_window,
                                                                 blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    window.explain_panel.choose_layer.click()
    picker = window.explain_panel.layer_picker
    qtbot.waitUntil(lambda: picker.shape_text("body.2") != "", timeout=10000)
    h, w = window.document.store.prediction.shape
    assert picker.shape_text("body.2") == f"1 x 16 x {(h + 1) // 2} x {(w + 1) // 2}"
    assert picker.shape_text("body.0") == f"1 x 8 x {h} x {w}"
    picker.select("body.0")
    picker.accept_selected()
    assert window.document.analysis.choice.layer == "body.0"
    qtbot.waitUntil(lambda: window.document.store.has_result(GRADCAM), timeout=10000)
    _, reference, gradcam = _reference(blocks_image, layer="body.0")
    expected = render_attribution(gradcam.upsampled[window.document.view.target], reference.image,
                                  "blended_heat_map", "all").rgba
    np.testing.assert_array_equal(overlay(window), expected)
    assert "body.0 (1 x 8" in window.explain_panel.status.text()


def test_paste_and_drop_open_images(qtbot, make_window, blocks_image):
    window = make_window()
    image = QImage(str(blocks_image))
    QGuiApplication.clipboard().setImage(image)
    window.commands.paste.trigger()
    wait_for_prediction(qtbot, window)
    assert window.windowTitle().startswith("<clipboard>")
    np.testing.assert_array_equal(
        window.document.image.prepared.rgb, preprocess(load_image(blocks_image), SIZE).rgb)

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(blocks_image))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.windowTitle().startswith("blocks.png"), timeout=10000)


def test_bad_image_is_reported_and_the_current_one_kept(qtbot, make_window, blocks_image,
                                                        tmp_path):
    window = make_window()
    _open(qtbot, window, blocks_image)
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"this is not a picture")
    window.document.image.open(bad)
    qtbot.waitUntil(lambda: window.status.last_error is not None, timeout=10000)
    assert "not an image" in window.status.last_error
    assert window.dialogs.current is not None and window.dialogs.current.isVisible()
    assert window.windowTitle().startswith("blocks.png")
    assert window.document.store.prediction is not None


def test_worker_exception_is_shown_and_the_window_keeps_working(qtbot, make_window,
                                                                blocks_image):
    window = make_window(architecture=BROKEN)
    window.document.image.open(blocks_image)
    qtbot.waitUntil(lambda: window.status.last_error is not None, timeout=10000)
    assert window.status.last_error == "RuntimeError: tiny_broken always fails"
    assert "Traceback" in window.dialogs.current.detailedText()
    window.dialogs.current.close()
    window.document.model.set(ModelChoice(TINY, "untrained", "cpu", SIZE))
    wait_for_prediction(qtbot, window)


def test_offline_dialog_offers_untrained_weights(qtbot, make_window, blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    window.model_panel.weights.setCurrentIndex(window.model_panel.weights.findData("default"))  # the tiny model has no default weights
    qtbot.waitUntil(lambda: window.dialogs.current is not None
                    and window.dialogs.current.isVisible(), timeout=10000)
    box = window.dialogs.current
    texts = [b.text() for b in box.buttons()]
    assert "Load weights file..." in texts and "Use untrained weights (demo)" in texts
    demo = next(b for b in box.buttons() if b.text() == "Use untrained weights (demo)")
    qtbot.mouseClick(demo, Qt.MouseButton.LeftButton)
    assert window.document.model.choice.weights == "untrained"
    wait_for_prediction(qtbot, window)
    assert window.document.model.loaded.untrained and window.banner.isVisible()


def test_settings_are_remembered(qtbot, make_window, blocks_image):
    window = make_window(size=96)
    _open(qtbot, window, blocks_image)
    choose(window.explain_panel.method, ACTIVATION)
    choose(window.explain_panel.sign, "absolute_value")
    window.explain_panel.segments.setCurrentIndex(
        window.explain_panel.segments.findData("component"))
    window.document.layers.chosen = SEGMENTATION
    window.opacity.setValue(35)
    window.close()

    again = MainWindow(num_threads=1)
    qtbot.addWidget(again)
    assert again.document.model.choice == ModelChoice(TINY, "untrained", "cpu", 96)
    assert again.document.analysis.choice.method == ACTIVATION
    assert again.document.analysis.choice.segments == "component"
    assert again.document.view.choice.sign == "absolute_value"
    assert again.document.layers.chosen == SEGMENTATION and again.opacity.value() == 35
    assert str(blocks_image.resolve()) in again.prefs.recent_files()
    assert again.recent_menu.actions()[0].toolTip() == str(blocks_image.resolve())
    again.close()


def test_imaging_round_trip():
    rgba = np.random.default_rng(1).integers(0, 255, (7, 5, 4), dtype=np.uint8)
    np.testing.assert_array_equal(from_qimage(to_qimage(rgba)), rgba)
    rgb = rgba[..., :3]
    back = from_qimage(to_qimage(np.ascontiguousarray(rgb)))
    np.testing.assert_array_equal(back[..., :3], rgb)


def test_canvas_zoom_pan_fit_and_actual_size(qtbot, make_window, blocks_image):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    window = make_window()
    _open(qtbot, window, blocks_image)
    canvas, viewport = window.canvas, window.canvas.viewport()
    assert canvas.is_fit()
    fit_zoom = canvas.zoom()
    assert fit_zoom > 4  # a 85 x 64 image fills the canvas
    assert window.document.view.zoom is None  # the view state: fit to the window
    window.commands.actual.trigger()
    assert canvas.zoom() == pytest.approx(1.0)
    assert window.document.view.zoom == pytest.approx(1.0)
    canvas.set_zoom(12.0)
    # The wheel zooms about the cursor: the pixel under it stays under it.
    pos = canvas.image_to_widget(40, 30)
    event = QWheelEvent(QPointF(pos), QPointF(canvas.mapToGlobal(pos)), QPoint(0, 0),
                        QPoint(0, 120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, event)
    assert canvas.zoom() == pytest.approx(15.0)
    assert canvas.widget_to_image(pos) == (40, 30)
    assert window.zoom_label.text() == "1500 %"
    # Dragging pans and is not a click: the target stays.
    target = window.document.view.target
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=pos)
    for step in range(1, 6):
        qtbot.mouseMove(viewport, pos + QPoint(12 * step, 8 * step))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=pos + QPoint(60, 40))
    assert window.document.view.target == target
    x, y = canvas.widget_to_image(pos)  # the image moved by about 60 / 15 and 40 / 15 px
    assert abs(x - 36) <= 1 and abs(y - 27.3) <= 1
    assert window.document.view.zoom == pytest.approx(15.0)  # panning keeps the zoom
    window.commands.fit.trigger()
    assert canvas.is_fit() and canvas.zoom() == pytest.approx(fit_zoom)
    assert window.document.view.zoom is None
    # the view state's zoom is the canvas's, whoever sets it
    window.document.view.zoom = 3.0
    assert canvas.zoom() == pytest.approx(3.0) and not canvas.is_fit()
    window.document.view.zoom = None
    assert canvas.is_fit() and canvas.zoom() == pytest.approx(fit_zoom)


def test_recent_files_sample_image_and_about(qtbot, make_window, blocks_image):
    window = make_window()
    window.commands.paste.trigger()  # nothing usable on the clipboard: a message, no job
    QGuiApplication.clipboard().clear()
    window.commands.paste.trigger()
    assert "no image" in window.statusBar().currentMessage()
    window.commands.sample.trigger()
    wait_for_prediction(qtbot, window)
    assert window.windowTitle().startswith("sample_astronaut.jpg")
    assert window.document.image.prepared.original_size == (512, 512)
    _open(qtbot, window, blocks_image)
    recent = window.recent_menu.actions()
    assert [a.toolTip() for a in recent[:2]] == [
        str(blocks_image.resolve()), str(window.prefs.recent_files()[1])]
    recent[1].trigger()  # the sample image again, from the menu
    qtbot.waitUntil(lambda: window.windowTitle().startswith("sample_astronaut.jpg"),
                    timeout=10000)
    window.commands.about.trigger()
    assert "SegExplorer" in window.dialogs.current.text()
    assert "Captum" in window.dialogs.current.text()
    window.dialogs.current.close()


def test_segments_and_baseline_choices_reach_the_sweep(qtbot, make_window, blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    panel = window.explain_panel
    choose(panel.method, ABLATION)
    panel.segments.setCurrentIndex(panel.segments.findData("component"))
    window.document.analysis.baseline = "#ff8000"  # what the colour dialog chooses
    assert window.document.analysis.choice.baseline == "#ff8000"
    assert panel.baseline.currentText() == "#ff8000"
    qtbot.waitUntil(lambda: window.document.store.has_result(ABLATION), timeout=20000)
    session, reference, _ = _reference(blocks_image)
    sweep = session.sweep(make_segments(reference.class_map, "component"), baseline="#ff8000")
    shown = window.document.store.sweep_for("component", "#ff8000")
    assert shown.segments.kind == "component" and shown.baseline == "#ff8000"
    # a table entry is a difference of two sums over many pixels: compared to 1e-5 of the
    # scores' scale (torch's thread count, which differs between the worker and this
    # thread, changes the order of the float32 sums)
    scale = float(np.abs(sweep.initial_scores).max())
    np.testing.assert_allclose(shown.table, sweep.table, rtol=1e-5, atol=1e-5 * scale)
    assert f"{sweep.segments.count} segments" in window.explain_panel.status.text()


def test_fast_mode_is_switched_on_knowingly_and_reaches_the_session(qtbot, make_window,
                                                                    blocks_image, tmp_path):
    window = make_window()
    _open(qtbot, window, blocks_image)
    panel = window.model_panel
    assert window.document.store.session.precision == "fp32" and not panel.fast.isChecked()
    assert not panel.fast_badge.isVisible()
    assert "Captum" in panel.fast.toolTip()  # says what it costs before it is switched on
    fp32_prediction = window.document.store.prediction
    panel.fast.setChecked(True)
    qtbot.waitUntil(lambda: window.document.store.session is not None
                    and window.document.store.session.precision == "bf16", timeout=10000)
    wait_idle(qtbot, window)
    assert panel.fast_badge.isVisible() and "approximate" in panel.fast_badge.text()
    assert "fast mode (bf16)" in window.status.device_label.text()  # the status bar says so too
    assert window.document.model.choice.precision == "bf16"
    assert window.document.store.prediction is not fp32_prediction  # predicted again, same model object
    # bf16 on the tiny model: the same segmentation here, numbers close but not equal
    agree = (window.document.store.prediction.class_map == fp32_prediction.class_map).mean()
    assert agree > 0.9
    folder = tmp_path / "fast"
    window.exporter.export_all(folder)
    qtbot.waitUntil(lambda: (folder / "report.json").is_file(), timeout=20000)
    assert json.loads((folder / "report.json").read_text())["precision"] == "bf16"
    panel.fast.setChecked(False)
    qtbot.waitUntil(lambda: window.document.store.session.precision == "fp32", timeout=10000)
    wait_idle(qtbot, window)
    np.testing.assert_array_equal(window.document.store.prediction.class_map, fp32_prediction.class_map)
    assert not panel.fast_badge.isVisible() and "fast" not in window.status.device_label.text()
