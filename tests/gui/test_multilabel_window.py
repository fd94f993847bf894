"""A multi-label model in the window, through its widgets (issue 24): the model card opens,
the segmentation shows each class as a layer with its outline, the legend and the Classes
panel show and hide classes, hover lists every class present, a click on a pixel in no
class picks nothing, a click in ablate mode shows the changed label sets, and a softmax
card on a multi-label model gets a dismissable note.

The model is ``tests/multilabel_models.py``'s colour detectors on their scene (red, green,
yellow = red and green, blue, white = all three, a grey background in no class)."""

from __future__ import annotations

import numpy as np
from gui_support import wait_for_prediction, wait_idle
from PySide6.QtCore import Qt

from segexplorer.gui.document.choices import ABLATED, SEGMENTATION
from segexplorer.gui.document.formatting import format_share
from segexplorer.gui.document.labels import label_layers

YELLOW, BLUE, NOTHING = (16, 12), (5, 24), (0, 0)


def open_multilabel(qtbot, make_window, card, image):
    window = make_window(interactive=False)
    window.dialogs.unattended_answer = True  # "Run It": the card's python factory
    assert window.cards.open_card(str(card))
    window.document.model.weights = "default"  # the card's own (the window starts untrained)
    window.document.image.open(image)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)
    return window


def click_image(qtbot, window, x, y, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, modifier,
                     window.canvas.image_to_widget(x, y))


def test_the_legend_and_the_classes_panel_show_and_hide_each_class(qtbot, make_window,
                                                                   multilabel_cards):
    window = open_multilabel(qtbot, make_window, multilabel_cards.multilabel,
                             multilabel_cards.image)
    doc, panel = window.document, window.classes_panel
    pred, colors = doc.store.prediction, doc.store.class_colors()
    assert pred.multilabel
    # the Classes panel: every class with its own share and a check box; the no-class line
    assert panel.listed_classes() == pred.present_classes
    for c in pred.present_classes:
        item = panel.item_for(c)
        assert item.text(1) == format_share(pred.share(c)) and panel.is_shown(c)
    assert format_share(pred.no_class_share) in panel.hint.text()
    assert "in no class" in panel.hint.text()
    # the segmentation layer: each class a layer with its outline, and the legend
    window.area.layer_button[SEGMENTATION].click()
    qtbot.waitUntil(lambda: window.area.footer.currentWidget() is window.legend, timeout=5000)
    np.testing.assert_array_equal(window.canvas.overlay_rgba(),
                                  label_layers(pred.masks, colors))
    items = window.legend.items()
    assert [e.cls for e in items] == [*pred.present_classes, None]
    assert [e.share for e in items] == [*(format_share(pred.share(c))
                                          for c in pred.present_classes),
                                        format_share(pred.no_class_share)]
    assert items[-1].name == "no class"
    # a click on the legend's 'red' hides red; the panel's check box follows
    red = [e.cls for e in items].index(0)
    rect = window.legend.entry_rect(red)
    assert not rect.isEmpty()
    qtbot.mouseClick(window.legend, Qt.MouseButton.LeftButton, pos=rect.center())
    assert doc.layers.hidden_classes == frozenset({0})
    qtbot.waitUntil(lambda: not panel.is_shown(0), timeout=5000)
    assert not window.legend.items()[red].shown
    np.testing.assert_array_equal(window.canvas.overlay_rgba(),
                                  label_layers(pred.masks, colors, hidden={0}))
    # the 'no class' entry toggles nothing
    qtbot.mouseClick(window.legend, Qt.MouseButton.LeftButton,
                     pos=window.legend.entry_rect(len(items) - 1).center())
    assert doc.layers.hidden_classes == frozenset({0})
    # checking red in the Classes panel shows it again; unchecking blue hides blue
    panel.item_for(0).setCheckState(0, Qt.CheckState.Checked)
    panel.item_for(2).setCheckState(0, Qt.CheckState.Unchecked)
    assert doc.layers.hidden_classes == frozenset({2})
    qtbot.waitUntil(lambda: window.legend.items()[red].shown, timeout=5000)
    np.testing.assert_array_equal(window.canvas.overlay_rgba(),
                                  label_layers(pred.masks, colors, hidden={2}))
    # the segments are named as the label sets they are
    combo = window.explain_panel.segments
    assert combo.currentText() == "By label set" and "label set" in combo.toolTip()
    assert combo.currentEnum().value == "class"
    assert window.ablation.panel.segments.currentText() == "By label set"
    assert window.explain_panel.aggregation.currentText() == "Sum over its own mask"
    assert window.explain_panel.aggregation.currentEnum().value == "argmax"
    assert window.ablation.panel.scores_title.text() == "CLASS SCORES (EACH CLASS'S OWN ORIGINAL MASK)"


def test_hover_lists_every_class_present_and_a_click_in_no_class_picks_none(
        qtbot, make_window, multilabel_cards):
    window = open_multilabel(qtbot, make_window, multilabel_cards.multilabel,
                             multilabel_cards.image)
    doc, viewport = window.document, window.canvas.viewport()
    pred, label = doc.store.prediction, window.status.hover_label
    qtbot.mouseMove(viewport, window.canvas.image_to_widget(*YELLOW))
    qtbot.waitUntil(lambda: "green" in label.text() and "red" in label.text(), timeout=5000)
    for p in pred.describe_pixel(*YELLOW):
        assert f"p {p.probability * 100:.0f} %" in label.text()
    assert "blue" not in label.text()
    qtbot.mouseMove(viewport, window.canvas.image_to_widget(*NOTHING))
    qtbot.waitUntil(lambda: "x 0, y 0" in label.text(), timeout=5000)
    assert "   no class" in label.text()
    assert not any(f"{name}: " in label.text() for name in ("red", "green", "blue"))
    target = doc.view.target
    click_image(qtbot, window, *NOTHING)
    assert doc.view.target == target  # no class there: the target stays
    click_image(qtbot, window, *BLUE)
    assert doc.view.target == 2


def test_a_click_in_ablate_mode_shows_the_changed_label_sets(qtbot, make_window,
                                                             multilabel_cards):
    window = open_multilabel(qtbot, make_window, multilabel_cards.multilabel,
                             multilabel_cards.image)
    doc, panel = window.document, window.ablation.panel
    window.activateWindow()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)
    assert doc.layers.chosen == ABLATED
    click_image(qtbot, window, *YELLOW)
    qtbot.waitUntil(lambda: doc.ablation.shown is not None, timeout=20000)
    wait_idle(qtbot, window)
    entry = doc.ablation.shown
    assert entry.label == "red + green"
    assert panel.summary.text().endswith("of pixels changed their set of classes")
    assert "(by label set)" in panel.details.text()
    assert "Shares before -> after" in panel.details.text()
    assert "set of classes changed" in panel.thumb_button("changed").toolTip()
    # the changed pixels: those whose set of classes changed
    panel.thumb_button("changed").click()
    qtbot.waitUntil(lambda: doc.ablation.view == "changed", timeout=5000)
    shown = window.canvas.overlay_rgba()
    changed = np.any(entry.outcome.masks_after != doc.store.prediction.masks, axis=0)
    assert changed.any()
    magenta = (shown[..., 0] == 255) & (shown[..., 1] == 0) & (shown[..., 2] == 255)
    np.testing.assert_array_equal(magenta, changed)
    # the new segmentation: the legend gives each class's share after
    panel.thumb_button("after").click()
    qtbot.waitUntil(lambda: window.area.footer.currentWidget() is window.legend, timeout=5000)
    after = entry.outcome.masks_after
    for e in window.legend.items()[:-1]:
        assert e.share == format_share(after[e.cls].sum() / after[0].size)


def test_a_softmax_card_on_a_multilabel_model_shows_a_dismissable_note(
        qtbot, make_window, multilabel_cards):
    window = open_multilabel(qtbot, make_window, multilabel_cards.trained_multilabel,
                             multilabel_cards.image)
    pred = window.document.store.prediction
    assert not pred.multilabel and pred.hint
    area = window.area
    qtbot.waitUntil(lambda: area.hint.isVisible(), timeout=5000)
    assert area.hint_label.text() == f"Note: {pred.hint}"
    assert 'outputs = "multilabel"' in area.hint_label.text()
    assert area.hint.height() < area.canvas.height() // 4  # one line, not a wall
    area.hint_dismiss.click()
    qtbot.waitUntil(lambda: not area.hint.isVisible(), timeout=5000)
    assert window.document.store.prediction is pred  # the result is not changed
    # the multi-label card's own model never gets it
    other = open_multilabel(qtbot, make_window, multilabel_cards.multilabel,
                            multilabel_cards.image)
    assert not other.area.hint.isVisible()
