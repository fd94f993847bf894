"""The window with the user's own model: Model > Open Model Card..., recent cards, the
legend in the card's names and colours, explain and ablate, and the code warning."""

from __future__ import annotations

import numpy as np
from gui_support import shown_model, wait_for_prediction, wait_idle
from PySide6.QtCore import Qt

from segexplorer.gui.document.choices import ABLATED, AnalysisChoice, ModelChoice, ViewChoice
from segexplorer.gui.settings import Preferences, make_settings

PALETTE = [[10, 20, 30], [200, 0, 0], [0, 200, 0], [0, 0, 200]]


def four_class_card(card_models, tmp_name="four_palette.toml"):
    card = card_models.root / tmp_name
    card.write_text('[model]\nname = "Four classes"\nsource = "python"\n'
                    'factory = "user_models.py:build_four"\nweights = "four.pt"\n'
                    'classes = ["sky", "road", "car", "tree"]\n'
                    f"palette = {PALETTE}\n[preprocess]\nsize = 40\n", encoding="utf-8")
    return card


def test_a_model_card_opens_explains_and_ablates(qtbot, make_window, card_models,
                                                 astronaut_path):
    window = make_window(interactive=False)
    window.dialogs.unattended_answer = True  # "Run It" for the code warning
    card = four_class_card(card_models)
    assert window.cards.open_card(str(card))
    assert window.model_panel.architecture.currentText() == "Four classes (card)"
    assert window.model_panel.size_spin.value() == 40  # the card's working size
    assert "Runs your Python code" in window.model_panel.weights_info.text()
    assert window.cards.recent_menu.actions()[0].text().endswith("four_palette.toml")
    window.document.image.open(astronaut_path)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)
    pred = window.document.store.prediction
    assert pred.categories == ("sky", "road", "car", "tree")
    listed = window.classes_panel.listed_classes()
    assert listed == pred.present_classes
    names = [window.classes_panel.item_for(c).text(0) for c in listed]
    assert names == [pred.categories[c] for c in listed]
    # the legend: the card's names and colours
    window.document.layers.chosen = "segmentation"
    qtbot.waitUntil(lambda: bool(window.legend.entries()), timeout=5000)
    entries = dict(window.legend.entries())
    for c in listed:
        assert entries[pred.categories[c]] == tuple(PALETTE[c])
    assert "(Four classes)" in window.windowTitle()
    assert "(model card)" in window.status.device_label.text()
    # explain: Grad-CAM of the target is drawn
    window.document.layers.chosen = "attribution"
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: window.document.store.gradcam_for() is not None, timeout=20000)
    assert window.canvas.overlay_rgba() is not None
    # ablate: a click on the target's segment shows the new prediction and the summary
    window.activateWindow()
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)
    assert window.document.layers.chosen == ABLATED
    target = window.document.view.target
    ys, xs = np.nonzero(pred.class_map == target)
    pos = window.canvas.image_to_widget(int(xs[len(xs) // 2]), int(ys[len(ys) // 2]))
    qtbot.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, pos)
    qtbot.waitUntil(lambda: window.document.ablation.shown is not None, timeout=20000)
    summary = window.ablation.panel.summary.text()
    assert summary.startswith(pred.categories[target]) and "changed class" in summary


def test_a_card_that_runs_code_is_not_opened_without_consent(qtbot, make_window, card_models):
    window = make_window(interactive=False, show=False)
    before = window.document.model.choice
    assert window.dialogs.unattended_answer is False
    assert not window.cards.open_card(str(four_class_card(card_models, "refused.toml")))
    assert window.document.model.choice == before == shown_model(window.model_panel)
    assert "not opened" in window.statusBar().currentMessage()
    assert window.cards.recent_menu.actions() == []


def test_a_bad_card_is_one_line_and_changes_nothing(qtbot, make_window, card_models):
    window = make_window(interactive=False, show=False)
    before = window.document.model.choice
    bad = card_models.root / "typo.toml"
    bad.write_text('[model]\nsource = "smp"\nclases = ["a"]\n')
    assert not window.cards.open_card(str(bad))
    assert window.status.last_error.startswith("Model card ") and "unknown key [model] clases" in \
        window.status.last_error
    assert window.document.model.choice == before == shown_model(window.model_panel)


def test_a_stored_card_that_runs_code_is_not_reopened_at_start(qtbot, card_models):
    from segexplorer.gui.main_window import MainWindow

    card = four_class_card(card_models, "stored.toml")
    Preferences(make_settings()).save_choices(ModelChoice(str(card), "default", "cpu", 40),
                                              AnalysisChoice(), ViewChoice())
    window = MainWindow(interactive=False, num_threads=1)
    qtbot.addWidget(window)
    try:
        assert window.document.model.choice.architecture != str(card)
        assert shown_model(window.model_panel) == window.document.model.choice
        assert "runs Python code" in window.statusBar().currentMessage()
    finally:
        window.close()


def test_a_stored_card_without_code_is_reopened(qtbot, card_models):
    from segexplorer.gui.main_window import MainWindow

    Preferences(make_settings()).save_choices(
        ModelChoice(str(card_models.smp), "default", "cpu", 45), AnalysisChoice(), ViewChoice())
    window = MainWindow(interactive=False, num_threads=1)
    qtbot.addWidget(window)
    try:
        assert window.document.model.choice.architecture == str(card_models.smp)
        assert shown_model(window.model_panel) == window.document.model.choice
        assert window.model_panel.architecture.currentText() == "unet (card)"
    finally:
        window.close()
