"""The window's document without Qt: no QApplication, no display, no threads.

The document is driven through its states (``doc.analysis.method = ...``) and a
:class:`QueueRunner` (jobs run when the test says so, on this thread); what it would
show is read from each panel's view function, and compared with the engine's and the
renderer's own answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from tiny_models import BROKEN, COLOUR, TINY

from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.models import load_model
from segexplorer.engine.segments import make_segments
from segexplorer.engine.session import Session
from segexplorer.gui.document import Document, QueueRunner
from segexplorer.gui.document.canvas_view import canvas_view
from segexplorer.gui.document.choices import (
    ABLATED,
    ABLATION,
    ACTIVATION,
    ATTRIBUTION,
    GRADCAM,
    SEGMENTATION,
    ModelChoice,
    ViewChoice,
    view_for_sign,
)
from segexplorer.gui.document.drawings import Drawings
from segexplorer.gui.document.explain_view import classes_view, explain_view
from segexplorer.gui.document.exports import Exports
from segexplorer.gui.document.keys import GradCamKey, ImageKey, ModelKey, PredictKey
from segexplorer.gui.document.panel_views import ablation_view, evaluation_view
from segexplorer.gui.document.planner import Situation, plan
from segexplorer.gui.document.preview import PREVIEW_SIZE
from segexplorer.gui.document.requests import (
    ComputeAblatedInput,
    ComputeGradCam,
    ComputeSweep,
    LoadEngine,
    LoadModel,
    Predict,
    Resize,
)
from segexplorer.gui.document.store import ResultStore
from segexplorer.gui.document.window_views import chrome_view, layers_view, model_view
from segexplorer.render import (
    VIEW_INPUT,
    decode_segmap,
    hide_target,
    outline_rgba,
    render_attribution,
)

SIZE = 64


@pytest.fixture(scope="module")
def squares_image(tmp_path_factory) -> Path:
    arr = np.full((SIZE, SIZE, 3), 200, np.uint8)
    arr[8:24, 8:24] = (230, 20, 20)  # red square: class 1 for the colour model
    arr[40:56, 36:60] = (20, 220, 20)  # green block: class 2
    path = tmp_path_factory.mktemp("doc") / "squares.png"
    Image.fromarray(arr).save(path)
    return path


def make_doc(architecture: str = TINY, size: int = SIZE, **choices):
    runner = QueueRunner()
    doc = Document(runner, ModelChoice(architecture, "untrained", "cpu", size), **choices)
    events: dict[str, list] = {"failed": [], "notice": [], "offline": [], "saved": []}
    doc.failed.connect(events["failed"].append)
    doc.notice.connect(events["notice"].append)
    doc.offline.connect(events["offline"].append)
    doc.saved.connect(events["saved"].append)
    return doc, runner, Drawings(), events


def present(doc, drawings):
    """Every panel's view of ``doc``, as the window presents them."""
    return SimpleNamespace(
        area=canvas_view(doc, drawings), explain=explain_view(doc, drawings),
        chrome=chrome_view(doc, drawings), classes=classes_view(doc, drawings),
        layers=layers_view(doc, drawings), model=model_view(doc, drawings),
        ablation=ablation_view(doc, drawings), evaluation=evaluation_view(doc, drawings))


def opened(path, architecture: str = TINY, size: int = SIZE, **choices):
    doc, runner, drawings, events = make_doc(architecture, size, **choices)
    doc.image.open(path)
    runner.run_until_idle()
    assert doc.store.prediction is not None, events["failed"]
    return doc, runner, drawings, events


def reference(path, architecture: str = TINY, size: int = SIZE, layer=None):
    session = Session(load_model(architecture, "untrained", "cpu"),
                      preprocess(load_image(path), size))
    return session, session.predict(), session.gradcam(None, layer=layer)


# ---------------------------------------------------------------------------- no Qt


def test_the_document_imports_no_qt_and_no_torch():
    code = ("import sys\nimport segexplorer.gui.document\n"
            "bad = [m for m in ('PySide6', 'torch') if m in sys.modules]\n"
            "assert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------- the planner


def _situation(**changes) -> Situation:
    model = ModelChoice(TINY, "untrained", "cpu", SIZE)
    base = Situation(engine_ready=True, model_choice=model,
                     analysis=make_doc()[0].analysis.choice, canvas_layer=ATTRIBUTION, target=None,
                     ablate_mode=False, loaded_model=None, source=None, loaded_image=None,
                     predict_key=None)
    return replace(base, **changes)


def test_the_planner_asks_for_the_engine_first_then_the_model_then_the_prediction():
    assert plan(_situation(engine_ready=False)) == (LoadEngine(),)
    model_key = ModelKey(TINY, "untrained", "cpu")
    assert plan(_situation()) == (LoadModel(model_key),)
    # an image was opened at another size: resized; the prediction waits for it
    s = _situation(loaded_model=model_key, source=7, loaded_image=ImageKey(7, 32))
    assert plan(s) == (Resize(ImageKey(7, SIZE)),)
    s = replace(s, loaded_image=ImageKey(7, SIZE))
    key = PredictKey(model_key, ImageKey(7, SIZE), "fp32")
    # Grad-CAM is asked for: the prediction's own forward pass gives it
    assert plan(s) == (Predict(key, GradCamKey(key, "", "argmax", "nearest")),)
    ablation = replace(s.analysis, method=ABLATION)
    assert plan(replace(s, analysis=ablation)) == (Predict(key, None),)


def test_the_planner_asks_only_for_what_the_store_does_not_hold():
    model_key = ModelKey(TINY, "untrained", "cpu")
    key = PredictKey(model_key, ImageKey(7, SIZE), "fp32")
    s = _situation(loaded_model=model_key, source=7, loaded_image=ImageKey(7, SIZE),
                   predict_key=key, target=15)
    gkey = GradCamKey(key, "", "argmax", "nearest")
    assert plan(s) == (ComputeGradCam(gkey),)
    assert plan(replace(s, stored=frozenset({gkey}))) == ()
    sweep = plan(replace(s, analysis=replace(s.analysis, method=ABLATION)))
    assert [type(r) for r in sweep] == [ComputeSweep]
    ablated = plan(replace(s, canvas_layer=ABLATED, stored=frozenset({gkey})))
    assert [type(r) for r in ablated] == [ComputeAblatedInput]
    assert ablated[0].key.target == 15
    # in ablate mode the ablated layer is the ablation's, not the target's
    assert plan(replace(s, canvas_layer=ABLATED, ablate_mode=True,
                        stored=frozenset({gkey}))) == ()


# ---------------------------------------------------------------------------- results


def test_opening_an_image_predicts_and_shows_gradcam_from_one_pass(blocks_image):
    doc, runner, drawings, events = opened(blocks_image)
    _, ref, gradcam = reference(blocks_image)
    np.testing.assert_array_equal(doc.store.prediction.class_map, ref.class_map)
    assert doc.store.session.forward_passes == 1  # the prediction and every class's Grad-CAM
    assert doc.view.target == ref.present_classes[0] != 0  # the largest foreground class
    view = present(doc, drawings)
    expected = render_attribution(gradcam.upsampled[doc.view.target], ref.image,
                                  "blended_heat_map", "all").rgba
    np.testing.assert_array_equal(view.area.canvas.overlay, expected)
    assert view.chrome.title == "blocks.png [untrained weights]"
    assert view.chrome.untrained and view.area.footer.kind == "colorbar"
    assert view.area.footer.caption.startswith(f"Grad-CAM of '{ref.categories[doc.view.target]}' at "
                                          "body.2 (1 x 16 x 32 x 43)")
    assert "Layer Grad-CAM at body.2" in view.explain.status and not view.explain.can_compute
    assert f"<b>{ref.categories[doc.view.target]}</b>" in view.explain.target_html
    assert view.chrome.can_export_view and view.chrome.can_export_figure and view.chrome.can_export_all
    assert not events["failed"]


def test_view_choices_and_the_target_redraw_without_a_job(blocks_image):
    doc, runner, drawings, _ = opened(blocks_image)
    _, ref, gradcam = reference(blocks_image)
    started = runner.started_count
    other = ref.present_classes[1]
    doc.view.target = other
    doc.view.update(view="masked_image", hide_target=True)
    assert doc.view.sign == "positive"  # Captum cannot mask with both signs
    attr = hide_target(gradcam.upsampled[other], ref.class_map, other)
    view = present(doc, drawings)
    np.testing.assert_array_equal(
        view.area.canvas.overlay, render_attribution(attr, ref.image, "masked_image",
                                                "positive").rgba)
    assert view.area.canvas.outline_key == (doc.store.predict_key, other)
    np.testing.assert_array_equal(view.area.canvas.outline, outline_rgba(ref.class_map == other))
    doc.layers.chosen = SEGMENTATION
    view = present(doc, drawings)
    np.testing.assert_array_equal(view.area.canvas.overlay, decode_segmap(ref.class_map))
    assert view.area.canvas.opacity == 0.6 and view.area.footer.kind == "legend"
    assert [entry.name for entry in view.area.footer.legend] == [ref.categories[c]
                                                        for c in ref.present_classes]
    doc.layers.chosen = ATTRIBUTION
    doc.analysis.update(method=ACTIVATION)  # from the same Grad-CAM pass
    view = present(doc, drawings)
    assert view.area.footer.caption.startswith("Mean activation of body.2")
    assert runner.started_count == started and not runner.pending()


def test_side_by_side_panels_follow_captums_sign_rule(blocks_image):
    doc, _, drawings, _ = opened(blocks_image, view=ViewChoice(view="alpha_scaling",
                                                               sign="negative"))
    doc.view.update(side_by_side=True)
    view = present(doc, drawings)
    assert [p.title for p in view.area.panels] == ["Image", "Blended heat map, all",
                                              "Alpha scaling, positive",
                                              "Alpha scaling, negative"]
    assert view_for_sign("alpha_scaling", "all") == "blended_heat_map"
    assert view_for_sign("heat_map", "all") == "heat_map"


def test_the_sweep_serves_every_target(blocks_image):
    doc, runner, drawings, _ = opened(blocks_image)
    doc.analysis.update(method=ABLATION)
    assert runner.pending() == ["sweep"] and doc.jobs.is_running("sweep")
    assert present(doc, drawings).explain.status == "The ablation sweep is being computed..."
    runner.run_until_idle()
    session, ref, _ = reference(blocks_image)
    sweep = session.sweep(make_segments(ref.class_map, "class"))
    started = runner.started_count
    for target in ref.present_classes[:3]:
        doc.view.target = target
        expected = render_attribution(sweep.attribution_map(target), ref.image,
                                      "blended_heat_map", "all").rgba
        np.testing.assert_array_equal(present(doc, drawings).area.canvas.overlay, expected)
    assert runner.started_count == started
    assert present(doc, drawings).explain.status.startswith(
        f"Sweep: {sweep.segments.count} segments")


def test_a_cancelled_job_waits_for_compute(blocks_image):
    doc, runner, drawings, events = opened(blocks_image)
    doc.analysis.update(method=ABLATION)
    doc.cancel_all()
    assert events["notice"][-1].text == "Cancelled. Press Compute (Ctrl+R) to run it again."
    view = present(doc, drawings)
    assert view.explain.status == ("The ablation sweep was cancelled or failed. "
                                   "Press Compute to run it.")
    assert view.explain.can_compute
    doc.view.target = doc.store.prediction.present_classes[1]  # other choices: still waits
    assert not runner.pending()
    doc.compute()
    assert runner.pending() == ["sweep"]
    runner.run_until_idle()
    assert doc.store.has_result(ABLATION)


def test_changing_the_working_size_predicts_again(blocks_image):
    doc, runner, drawings, _ = opened(blocks_image)
    assert doc.store.prediction.shape == (64, 85)
    doc.model.set(replace(doc.model.choice, size=48))
    runner.run_until_idle()
    assert doc.store.prediction.shape == (48, 64) and doc.image.prepared.shape == (48, 64)
    _, ref, _ = reference(blocks_image, size=48)
    np.testing.assert_array_equal(doc.store.prediction.class_map, ref.class_map)
    assert doc.store.has_result(GRADCAM)
    assert present(doc, drawings).area.canvas.working.shape == (48, 64, 3)
    assert present(doc, drawings).area.canvas.base.shape == (96, 128, 3)  # the photo itself


def test_a_result_of_an_older_prediction_is_dropped(blocks_image):
    doc, *_ = opened(blocks_image)
    store = doc.store
    old = replace(doc.store.predict_key, precision="bf16")
    assert not store.put(GradCamKey(old, "", "argmax", "nearest"), object())
    assert store.put(GradCamKey(doc.store.predict_key, "x", "argmax", "nearest"), object())
    assert ResultStore().put(GradCamKey(old, "", "argmax", "nearest"), object()) is False


def test_a_broken_model_is_reported_once_and_the_document_recovers(blocks_image):
    doc, runner, drawings, events = make_doc(BROKEN)
    doc.image.open(blocks_image)
    runner.run_until_idle()
    assert [f.message for f in events["failed"]] == ["RuntimeError: tiny_broken always fails"]
    assert "Traceback" in events["failed"][0].details
    doc.model.set(ModelChoice(TINY, "untrained", "cpu", SIZE))
    runner.run_until_idle()
    assert doc.store.prediction is not None


def test_default_weights_that_are_missing_offer_a_way_on(blocks_image):
    doc, runner, _, events = opened(blocks_image)
    doc.model.set(replace(doc.model.choice, weights="default"))
    runner.run_until_idle()
    assert [o.architecture for o in events["offline"]] == [TINY]
    assert not events["failed"]


def test_changing_the_architecture_forgets_the_layer(blocks_image):
    doc, runner, _, _ = opened(blocks_image)
    doc.analysis.update(layer="body.0")
    runner.run_until_idle()
    assert doc.store.gradcam_for().layer == "body.0"
    doc.model.set(replace(doc.model.choice, architecture=COLOUR))
    assert doc.analysis.layer == "" and doc.model_layers.default() == "features"
    runner.run_until_idle()
    assert doc.model_layers.default() == "features" and doc.store.gradcam_for().layer == "features"


# ---------------------------------------------------------------------------- preview


def test_a_preview_comes_first_on_a_slow_device_and_is_display_only(blocks_image):
    doc, runner, drawings, events = make_doc(size=PREVIEW_SIZE + 32)
    doc.image.open(blocks_image)
    shown = []
    runner.cancel_during = lambda job: shown.append(
        (doc.preview.result is not None, doc.store.prediction is None)) or False
    runner.run_until_idle()
    assert (True, True) in shown  # the preview was there before the full result
    assert doc.preview.shown_count == 1 and doc.preview.result is None
    notes = [n.text for n in events["notice"] if n.text]
    assert f"Preview at {PREVIEW_SIZE} px" in notes[-2]
    assert notes[-1] == f"Showing the full-size result ({PREVIEW_SIZE + 32} px)."


# ---------------------------------------------------------------------------- ablation


def test_a_click_ablates_its_segment_and_the_sweep_answers_later_clicks(squares_image):
    doc, runner, drawings, _ = opened(squares_image, COLOUR)
    ablation = doc.ablation
    ablation.click(15, 15)
    assert ablation.active and doc.layers.chosen == ABLATED
    assert runner.pending() == ["ablated"] and ablation.is_computing()
    assert present(doc, drawings).ablation.status[0] == "Ablating aeroplane..."
    runner.run_until_idle()
    entry = ablation.shown
    assert entry.selection.ids == (1,) and not entry.outcome.from_cache
    session = Session(load_model(COLOUR, "untrained", "cpu"),
                      preprocess(load_image(squares_image), SIZE))
    segments = make_segments(session.predict().class_map, "class")
    np.testing.assert_array_equal(entry.outcome.after, session.ablate(segments, [1]).after)
    view = present(doc, drawings)
    assert view.area.canvas.overlay is entry.view(VIEW_INPUT)
    assert view.ablation.result.summary == entry.summary and view.ablation.can_precompute
    # the sweep: single clicks are then lookups, no job
    ablation.precompute_sweep()
    runner.run_until_idle()
    started = runner.started_count
    ablation.click(45, 48)
    assert ablation.shown.selection.ids == (2,) and ablation.shown.outcome.from_cache
    assert runner.started_count == started
    # Shift+click adds; the pair needs one forward pass
    ablation.click(15, 15, add=True)
    assert ablation.selection.ids == (1, 2) and runner.pending() == ["ablated"]
    runner.run_until_idle()
    assert set(np.unique(ablation.shown.outcome.class_map_after)) == {0}
    assert [e.selection.ids for e in ablation.history] == [(1,), (2,), (1, 2)]
    # the history answers without work; another baseline ablates again
    ablation.show_history(0)
    assert ablation.shown is ablation.history[0] and not runner.pending()
    doc.analysis.update(baseline="black")
    runner.run_until_idle()
    assert ablation.shown.selection.baseline == "black"
    # other segments: the ids name other regions now
    doc.analysis.update(segments="component")
    assert ablation.selection is None and ablation.shown is None
    assert len(ablation.history) == 4
    doc.escape()  # nothing selected: Esc cancels jobs (none) and keeps ablate mode
    assert ablation.active
    ablation.set_active(False)
    assert doc.layers.chosen == ATTRIBUTION


def test_each_view_is_presented_only_when_what_it_reads_changes(squares_image):
    from segexplorer.gui.document.presenting import Presenters

    doc, runner, _, _ = opened(squares_image, COLOUR)
    presenters = Presenters(doc)
    shown: dict[str, object] = {}
    for view in (canvas_view, explain_view, chrome_view, classes_view, layers_view,
                 model_view, ablation_view, evaluation_view):
        presenters.add(view, lambda value, name=view.__name__: shown.update({name: value}))
    doc.ablation.set_active(True)
    runner.run_until_idle()

    def presented(act) -> set[str]:
        before = dict(presenters.calls)
        act()
        return {name for name, n in presenters.calls.items() if n != before.get(name, 0)}

    # the cursor onto another segment in ablate mode: the canvas (the outline) and the
    # Ablation panel, once each
    assert presented(lambda: doc.ablation.hover(45, 48)) == {"canvas", "ablation"}
    assert presented(lambda: doc.ablation.hover(15, 15)) == {"canvas", "ablation"}
    assert presented(lambda: doc.ablation.hover(15, 16)) == set()  # the same segment
    # a view option: what draws the map and what says whether it can be drawn
    assert presented(lambda: doc.view.update(sign="positive")) == {
        "canvas", "explain", "chrome"}
    # a class: everything that shows the target
    assert presented(lambda: setattr(doc.view, "target", 1)) == {
        "canvas", "explain", "chrome", "classes", "evaluation"}
    assert presenters.calls["model"] == 1  # only when registered: the image is the same


# ---------------------------------------------------------------------------- exports


def test_export_all_writes_what_explain_writes_and_keeps_the_sweep(blocks_image, tmp_path):
    doc, runner, drawings, events = opened(blocks_image)
    exports = Exports(doc)
    passes = doc.store.session.forward_passes
    exports.all(tmp_path / "all")
    runner.run_until_idle()
    report = json.loads((tmp_path / "all" / "report.json").read_text())
    assert report["model"] == TINY and report["untrained"] is True
    assert report["present_classes"] == doc.store.prediction.present_classes
    assert report["image"] == str(blocks_image)
    # the Grad-CAM the document had was reused: only the sweep's passes were added
    sweep = doc.store.sweep_for("class", "zero")
    assert sweep is not None
    assert doc.store.session.forward_passes == passes + sweep.forward_passes
    assert report["forward_passes"] == doc.store.session.forward_passes
    assert events["saved"][-1].path == tmp_path / "all"
    assert exports.figure(tmp_path / "figure.pdf") is None
    runner.run_until_idle()
    assert (tmp_path / "figure.pdf").read_bytes()[:4] == b"%PDF"
