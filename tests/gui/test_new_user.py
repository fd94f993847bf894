"""What a new user hit in the window (issue 13), driven through the widgets.

Each test failed on main at 4f62e21 (checked before its fix: the behaviour it asserts
was missing there); the document-level ones are in tests/test_new_user_defects.py.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from gui_support import SIZE, SLOW, TINY, SlowDown, wait_for_prediction, wait_idle
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from torch import nn

from segexplorer.engine.models import VOC_CATEGORIES, Architecture, register_architecture
from segexplorer.gui.ablation_panel import VIEW_AFTER
from segexplorer.gui.document.choices import ABLATED, ModelChoice
from segexplorer.gui.explain_panel import CUSTOM_COLOUR

SHARED = "tiny_shared_relu"


class SharedRelu(nn.Module):
    """One ReLU module called twice per pass, and a head that never reaches the output."""

    def __init__(self, num_classes: int = 21) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Conv2d(6, num_classes, 1)
        self.unused_head = nn.Conv2d(6, num_classes, 1)

    def forward(self, x):
        features = self.relu(self.conv2(self.relu(self.conv1(x))))
        self.unused_head(features)  # computed, never read: an auxiliary head
        out = self.head(features)
        return {"out": F.interpolate(out, x.shape[2:], mode="bilinear", align_corners=False)}


register_architecture(Architecture(SHARED, lambda n: SharedRelu(n), "conv2",
                                   categories=VOC_CATEGORIES, description="shared relu"))


def _open(qtbot, window, path):
    window.document.image.open(path)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)


# 1 -----------------------------------------------------------------------------------
def test_the_layer_picker_shows_what_the_engine_reports_and_refuses_in_one_line(
        qtbot, make_window, blocks_image):
    window = make_window(SHARED)
    _open(qtbot, window, blocks_image)
    window.explain_panel.choose_layer.click()
    picker = window.explain_panel.layer_picker
    qtbot.waitUntil(lambda: picker.shape_text("relu") != "", timeout=10000)
    h, w = window.document.store.prediction.shape
    assert picker.shape_text("relu") == f"1 x 6 x {h} x {w}"  # its last call: 6 channels
    assert "called 2 times" in picker.note_text("relu")
    assert not picker.is_usable("unused_head") and "does not influence" in \
        picker.note_text("unused_head")
    started, layer = window.runner.started_count, window.document.analysis.choice.layer
    picker.select("unused_head")
    picker.accept_selected()
    assert window.document.analysis.choice.layer == layer  # refused before any work
    assert window.runner.started_count == started
    assert window.status.last_error is not None and "does not influence" in window.status.last_error
    assert "\n" not in window.status.last_error


# 6 -----------------------------------------------------------------------------------
def test_another_model_does_not_wait_for_the_running_pass(qtbot, make_window, blocks_image):
    window = make_window(SLOW)
    _open(qtbot, window, blocks_image)
    SlowDown.seconds = 1.5
    window.document.analysis.update(method="ablation")  # a sweep of slow passes
    qtbot.waitUntil(lambda: SlowDown.inside > 0, timeout=5000)
    window.document.model.set(ModelChoice(TINY, "untrained", "cpu", SIZE))
    qtbot.waitUntil(lambda: window.document.store.prediction is not None
                    and window.document.model.loaded_key.architecture == TINY, timeout=10000)
    assert SlowDown.inside > 0, "the new model waited for the old model's pass to end"
    SlowDown.seconds = 0.0
    wait_idle(qtbot, window)


# 8 -----------------------------------------------------------------------------------
def test_the_window_fits_a_1024_by_700_screen(qtbot, make_window, blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    hint = window.minimumSizeHint().expandedTo(window.minimumSize())
    assert hint.width() <= 1024 and hint.height() <= 700, hint
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.width() <= 1024 and window.height() <= 700, timeout=2000)


# 9 -----------------------------------------------------------------------------------
def test_ablate_mode_names_its_view_and_gives_the_new_segmentation_a_legend(
        qtbot, make_window, tmp_path):
    arr = np.full((SIZE, SIZE, 3), 200, np.uint8)
    arr[8:24, 8:24] = (230, 20, 20)
    arr[40:56, 36:60] = (20, 220, 20)
    path = tmp_path / "squares.png"
    Image.fromarray(arr).save(path)
    window = make_window("colour")
    _open(qtbot, window, path)
    ablation = window.document.ablation
    ablation.set_active(True)
    # the segment under the cursor is outlined before any click
    window.canvas.hovered.emit(45, 48)
    qtbot.waitUntil(lambda: window.canvas.outline_visible(), timeout=2000)
    drawn = window.canvas.outline_rgba()[..., 3] > 0
    assert drawn[window.document.store.prediction.class_map == 2].any()
    ablation.click(15, 15)
    qtbot.waitUntil(lambda: ablation.shown is not None, timeout=10000)
    wait_idle(qtbot, window)
    qtbot.mouseClick(window.ablation.panel.thumb_button(VIEW_AFTER), Qt.MouseButton.LeftButton)
    assert window.area.layer_button[ABLATED].text() == "New segmentation"
    assert window.area.footer.currentWidget() is window.legend
    after = ablation.shown.outcome.class_map_after
    names = [name for name, _ in window.legend.entries()]
    assert names == [window.document.store.prediction.categories[c] for c in sorted(set(np.unique(after)),
                     key=lambda c: -(after == c).sum())]
    # the chart draws each class against its own score: small classes stay visible
    widths = window.ablation.panel.chart.bar_widths()
    assert widths and min(before for before, _ in widths) > 20
    # a colour baseline is offered here too
    combo = window.ablation.panel.baseline
    assert combo.findData(CUSTOM_COLOUR) >= 0


# 12 ----------------------------------------------------------------------------------
def test_keyboard_zoom_an_editable_layer_field_and_a_focusing_click(qtbot, make_window,
                                                                    blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    window.activateWindow()
    canvas = window.canvas
    canvas.setFocus()
    zoom = canvas.zoom()
    QTest.keyClick(canvas, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert canvas.zoom() > zoom
    # the layer field takes typing (with completion) and Enter applies it
    field = window.explain_panel.layer
    assert not field.isReadOnly() and field.completer() is not None
    field.setFocus()
    field.selectAll()
    QTest.keyClicks(field, "body.0")
    QTest.keyClick(field, Qt.Key.Key_Return)
    assert window.document.analysis.choice.layer == "body.0"
    # a layer the model does not have: refused in one line, and the field shows the one
    # in use again
    field.selectAll()
    QTest.keyClicks(field, "no.such.layer")
    QTest.keyClick(field, Qt.Key.Key_Return)
    assert window.document.analysis.choice.layer == "body.0"
    assert "does not exist" in window.status.last_error
    assert field.text() == "body.0"
    window.dialogs.current.close()
    # a click that focuses the image does not change the target
    target = window.document.view.target
    cm = window.document.store.prediction.class_map
    other = next(c for c in window.document.store.prediction.present_classes if c != target)
    ys, xs = np.nonzero(cm == other)
    pos = canvas.image_to_widget(int(xs[len(xs) // 2]), int(ys[len(ys) // 2]))
    window.explain_panel.layer.setFocus()  # typing a layer path, then a click on the image
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert window.document.view.target == target and canvas.hasFocus()
    qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert window.document.view.target == other


# 13 ----------------------------------------------------------------------------------
def test_export_dialogs_start_in_the_last_export_folder(qtbot, make_window, tmp_path):
    window = make_window()
    window.commands.sample.trigger()
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)
    resources = str(window.document.image.source.path).rsplit("/", 1)[0]
    assert window.exporter.export_folder() != resources
    out = tmp_path / "exports"
    window.exporter.export_all(out)
    qtbot.waitUntil(lambda: window.exporter.exports.last_saved == out, timeout=20000)
    assert window.exporter.export_folder() == str(out)
    assert window.exporter.exports.default_name(window.exporter.export_folder(),
                                                ".png").startswith(str(out))


# asked for: Help > Keyboard shortcuts ---------------------------------------------------
def test_help_lists_every_keyboard_shortcut(qtbot, make_window):
    window = make_window()
    window.commands.shortcuts.trigger()
    text = window.dialogs.current.text()
    for keys, what in (("Ctrl+R", "Compute"), ("Esc", "Cancel Running Jobs"),
                       ("A", "Ablate Mode"), ("Ctrl+=", "Zoom In"), ("Ctrl+M", "Side by Side"),
                       ("Shift+click", "add or remove a segment")):
        assert keys in text and what in text, (keys, what)
    window.dialogs.current.close()


# 3 -----------------------------------------------------------------------------------
def test_the_image_is_shown_and_exported_at_its_own_resolution(qtbot, make_window,
                                                               blocks_image, tmp_path):
    window = make_window()
    _open(qtbot, window, blocks_image)
    canvas = window.canvas
    assert canvas.original_size() == (128, 96)  # the photo itself, sharp when zoomed
    assert canvas.image_size() == (85, 64)  # the overlays' grid: what the model saw
    assert "85 x 64" in window.model_panel.working_note.text()
    # a pixel under the cursor is still the working pixel the engine's arrays index
    cm = window.document.store.prediction.class_map
    ys, xs = np.nonzero(cm == window.document.store.prediction.present_classes[-1])
    x, y = int(xs[len(xs) // 2]), int(ys[len(ys) // 2])
    assert canvas.widget_to_image(canvas.image_to_widget(x, y)) == (x, y)
    full, working = tmp_path / "full.png", tmp_path / "working.png"
    window.exporter.export_view(full)
    window.exporter.export_view(working, working=True)
    qtbot.waitUntil(lambda: full.is_file() and working.is_file(), timeout=10000)
    assert np.asarray(Image.open(full)).shape == (96, 128, 4)
    assert np.asarray(Image.open(working)).shape == (64, 85, 4)


# asked for: brush and lasso on the canvas ------------------------------------------------
def test_the_lasso_draws_a_region_on_the_canvas_and_ablates_it(qtbot, make_window, tmp_path):
    arr = np.full((SIZE, SIZE, 3), 200, np.uint8)
    arr[8:24, 8:24] = (230, 20, 20)
    path = tmp_path / "square.png"
    Image.fromarray(arr).save(path)
    window = make_window("colour")
    _open(qtbot, window, path)
    panel = window.ablation.panel
    qtbot.mouseClick(panel.tool_button("lasso"), Qt.MouseButton.LeftButton)
    assert window.document.ablation.active and window.canvas.tool == "lasso"
    viewport, canvas = window.canvas.viewport(), window.canvas
    corners = [(6, 6), (26, 6), (26, 26), (6, 26)]
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=canvas.image_to_widget(*corners[0]))
    for corner in corners[1:]:
        qtbot.mouseMove(viewport, canvas.image_to_widget(*corner))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton,
                       pos=canvas.image_to_widget(*corners[-1]))
    ablation = window.document.ablation
    qtbot.waitUntil(lambda: ablation.shown is not None, timeout=10000)
    assert ablation.shown.selection.kind.startswith("region")
    assert 1 not in np.unique(ablation.shown.outcome.class_map_after)  # the square is gone
    assert "drawn region" in panel.summary.text() or "aeroplane" in panel.summary.text()


# 8, 12: rows keep their place; the image shows it has the keys --------------------------
def test_status_rows_do_not_jump_and_the_focused_image_is_framed(qtbot, make_window,
                                                                 blocks_image):
    window = make_window()
    _open(qtbot, window, blocks_image)
    panel = window.explain_panel
    below = panel.view.mapTo(panel, panel.view.rect().topLeft()).y()
    short = panel.status.text()
    assert "Grad-CAM" in short
    panel.status.setText("The ablation sweep was cancelled or failed. Press Compute to run "
                         "it.")
    qtbot.wait(1)  # (layout: processed with the pending events)
    window.activateWindow()
    assert panel.view.mapTo(panel, panel.view.rect().topLeft()).y() == below
    window.canvas.setFocus()
    qtbot.waitUntil(window.canvas.hasFocus, timeout=2000)
    assert window.canvas.has_focus_frame()
    window.explain_panel.method.setFocus()
    qtbot.waitUntil(lambda: not window.canvas.has_focus_frame(), timeout=2000)


def test_the_layers_panel_stacks_layers_on_the_canvas(qtbot, make_window, blocks_image,
                                                      tmp_path):
    window = make_window()
    _open(qtbot, window, blocks_image)
    panel = window.layers_panel
    assert not panel.visibility_box("attribution").isEnabled()  # the chosen one: on top
    assert window.canvas.under_count() == 0
    qtbot.mouseClick(panel.visibility_box("segmentation"), Qt.MouseButton.LeftButton)
    assert window.canvas.under_count() == 1
    panel.opacity_slider("segmentation").setValue(25)
    assert window.document.layers.opacity["segmentation"] == 0.25
    plain = tmp_path / "stacked.png"
    window.exporter.export_view(plain)
    qtbot.waitUntil(plain.is_file, timeout=10000)
    assert np.asarray(Image.open(plain)).shape == (96, 128, 4)
