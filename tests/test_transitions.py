"""The window's state and transitions (issue 26, items 1-4 and 10), through the document.

Each test failed on main at 7f219e3 (run against main's code before the fix); the
widget-level ones are in tests/gui/test_window_transitions.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_document import make_doc, opened, present

from segexplorer.gui.document.canvas_view import HOVER_HINT, describe_pixel
from segexplorer.gui.document.choices import ABLATED
from segexplorer.gui.document.drawings import Drawings
from segexplorer.gui.document.session_record import SessionRecord


# 1 -----------------------------------------------------------------------------------
def test_a_pixel_of_the_old_working_size_is_off_the_image_at_the_new_one(motorcycle_path):
    doc, runner, drawings, _ = opened(motorcycle_path, size=64)
    assert present(doc, drawings).area.canvas.overlay.shape[:2] == (64, 94)
    assert describe_pixel(doc, drawings, 93, 63).startswith("x 93, y 63")
    doc.model.size = 48
    runner.run_until_idle()
    view = present(doc, drawings)
    assert view.area.canvas.working.shape[:2] == view.area.canvas.overlay.shape[:2] == (48, 71)
    assert describe_pixel(doc, drawings, 93, 63) == HOVER_HINT  # not an IndexError
    assert describe_pixel(doc, drawings, 70, 47).startswith("x 70, y 47  (original 731, 490)")
    assert describe_pixel(doc, Drawings(), 70, 47).startswith("x 70, y 47")


# 2 -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    arr = np.full((64, 64, 3), 200, np.uint8)
    arr[8:24, 8:24] = (230, 20, 20)  # red: class 1 for the colour model
    arr[40:56, 36:60] = (20, 220, 20)  # green: class 2
    path = tmp_path_factory.mktemp("transitions") / "squares.png"
    Image.fromarray(arr).save(path)
    return path


def _saved_session(squares, tmp_path) -> tuple[Path, object]:
    from segexplorer.gui.document.sessions import save

    doc, runner, _, _ = opened(squares, "colour")
    doc.ablation.click(15, 15)
    runner.run_until_idle()
    doc.ablation.click(45, 48, add=True)
    runner.run_until_idle()
    path = tmp_path / "work.segx"
    save(doc, path)
    runner.run_until_idle()
    return path, doc


def test_a_session_reopened_with_its_model_already_loaded_restores_the_ablations(
        squares, tmp_path):
    from segexplorer.gui.document.sessions import open_session

    path, saved = _saved_session(squares, tmp_path)
    # a restarted window: the same model, loaded before any image (preload), and the
    # canvas layer of last time (ablate mode draws the ablated input)
    doc, runner, _, events = make_doc("colour", canvas_layer=ABLATED)
    doc.preload_model()
    runner.run_until_idle()
    assert doc.model.loaded is not None and doc.store.prediction is None
    open_session(doc, path)
    runner.run_until_idle()
    assert not events["failed"]
    assert doc.ablation.active
    assert [e.selection.ids for e in doc.ablation.history] == [(1,), (1, 2)]
    np.testing.assert_array_equal(doc.ablation.shown.outcome.after,
                                  saved.ablation.history[1].outcome.after)


def test_a_session_reopened_over_an_open_image_restores_the_ablations(squares, tmp_path):
    from segexplorer.gui.document.sessions import open_session

    path, _ = _saved_session(squares, tmp_path)
    doc, runner, _, events = opened(squares, "colour")  # the same image and model shown
    open_session(doc, path)
    runner.run_until_idle()
    assert not events["failed"]
    assert doc.ablation.active
    assert [e.selection.ids for e in doc.ablation.history] == [(1,), (1, 2)]


def test_ablations_are_unsaved_work_until_a_session_file_holds_them(squares, tmp_path):
    doc, runner, _, _ = opened(squares, "colour")
    doc_record = SessionRecord(doc)
    assert not doc_record.unsaved()  # looking is not work
    doc.ablation.click(15, 15)
    runner.run_until_idle()
    assert doc_record.unsaved()
    doc_record.save(tmp_path / "work.segx")
    runner.run_until_idle()
    assert not doc_record.unsaved() and doc_record.path == tmp_path / "work.segx"
    doc.ablation.click(45, 48, add=True)
    runner.run_until_idle()
    assert doc_record.unsaved()
    reopened, runner2, _, _ = make_doc("colour")
    reopened_record = SessionRecord(reopened)
    reopened_record.open(tmp_path / "work.segx")
    runner2.run_until_idle()
    assert [e.selection.ids for e in reopened.ablation.history] == [(1,)]
    assert not reopened_record.unsaved()  # what the file holds is on screen


def test_unsaved_work_is_autosaved_after_each_change_and_comes_back_from_it(squares, tmp_path):
    from segexplorer.gui.document.session_file import read

    autosave = tmp_path / "state" / "autosave.segx"
    doc, runner, _, events = opened(squares, "colour")
    doc_record = SessionRecord(doc)
    doc_record.autosave = autosave
    doc.ablation.click(15, 15)
    runner.run_until_idle()
    assert [a.ids for a in read(autosave).history] == [(1,)]
    doc.ablation.click(45, 48, add=True)
    runner.run_until_idle()
    assert [a.ids for a in read(autosave).history] == [(1,), (1, 2)]
    doc.view.target = 2
    runner.run_until_idle()
    assert read(autosave).target == 2
    assert not events["saved"]  # silently: no status line for each change
    # the window was killed; the next one brings the work back, still unsaved
    restarted, runner2, _, _ = make_doc("colour")
    restarted_record = SessionRecord(restarted)
    restarted_record.autosave = autosave
    restarted_record.restore_autosave()
    runner2.run_until_idle()
    assert [e.selection.ids for e in restarted.ablation.history] == [(1,), (1, 2)]
    assert restarted.view.target == 2 and restarted.ablation.active
    assert restarted_record.unsaved() and restarted_record.path is None
    # saved: the autosave has nothing left to bring back
    restarted_record.save(tmp_path / "kept.segx")
    runner2.run_until_idle()
    assert not autosave.exists()


# 3 -----------------------------------------------------------------------------------
def test_a_refused_model_card_changes_nothing(squares, card_models, tmp_path):
    from segexplorer.engine.cards import read_card

    card = card_models.smp.parent / "bad-layer-26.toml"  # (its weights are beside it)
    card.write_text(card_models.smp.read_text(encoding="utf-8").replace(
        "encoder.layer4.1.conv2", "encoder.layer4.1.conv9"), "utf-8")
    assert read_card(card) is not None  # the card reads; its model refuses the layer
    doc, runner, drawings, events = opened(squares, "colour")
    before = (doc.model.choice, doc.store.prediction, doc.view.target)
    doc.model.update(architecture=str(card), size=45)  # what opening the card asks
    runner.run_until_idle()
    assert len(events["failed"]) == 1 and "conv9" in events["failed"][0].message
    assert doc.model.choice == before[0]  # the working size too
    assert doc.store.prediction is before[1]  # the results, classes and evaluation stay
    classes = present(doc, drawings).classes
    assert classes.classes is before[1] and classes.target == before[2] is not None
    assert "Waiting" not in present(doc, drawings).area.message
    assert not doc.jobs.busy()


def test_cancelling_the_missing_weights_offer_does_not_wait_for_a_prediction(squares):
    doc, runner, drawings, events = make_doc("colour")
    doc.model.weights = "default"  # not on this computer, and offline: the offer
    doc.image.open(squares)
    runner.run_until_idle()
    assert [o.architecture for o in events["offline"]] == ["colour"]  # Cancel: nothing
    message = present(doc, drawings).area.message
    assert "Waiting" not in message and "Compute (Ctrl+R)" in message, message
    doc.compute()  # Ctrl+R tries again (and offers again)
    assert runner.pending() == ["model"]
    runner.run_until_idle()
    assert len(events["offline"]) == 2


# 4 -----------------------------------------------------------------------------------
def test_a_newly_opened_card_uses_its_own_weights(squares, card_models):
    doc, runner, drawings, _ = opened(squares, "colour")  # untrained (demo) weights
    assert present(doc, drawings).chrome.untrained
    doc.model.choose_card(str(card_models.smp), 45)
    runner.run_until_idle()
    assert doc.model.weights == "default"  # "From the card"
    assert not doc.model.loaded.untrained and doc.store.prediction.shape == (45, 45)
    chrome = present(doc, drawings).chrome
    assert not chrome.untrained and "[untrained weights]" not in chrome.title
