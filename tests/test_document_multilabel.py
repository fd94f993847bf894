"""A multi-label model in the window's document (no Qt), with known answers (issue 24).

The model is ``tests/multilabel_models.py``'s colour detectors under a python card with
``outputs = "multilabel"``, on its scene: red, green, yellow (red and green), blue, white
(all three) and a grey background in no class. What each view shows is compared with
the engine's own answer on the same card and image (``Prediction.masks``, ``share``,
``describe_pixel``, ``segments``, ``Session.ablate``, each method's maps) and with the
renderer's own drawing (``render.multilabel``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from multilabel_models import CLASSES, LABEL_SETS, known_masks, scene
from test_document import present

from segexplorer.engine.attribution import compute
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.methods import METHODS
from segexplorer.engine.models import load_model
from segexplorer.engine.segments import label_set_segments
from segexplorer.engine.session import Session
from segexplorer.gui.document import Document, QueueRunner
from segexplorer.gui.document.canvas_view import describe_pixel
from segexplorer.gui.document.choices import (
    ABLATED,
    ATTRIBUTION,
    SEGMENTATION,
    ModelChoice,
    default_target,
)
from segexplorer.gui.document.drawings import Drawings
from segexplorer.gui.document.formatting import format_share
from segexplorer.gui.document.labels import (
    LABEL_SET_SEGMENT_LABELS,
    LAYER_ALPHA,
    class_at,
    label_layers,
    legend_entries,
    segmentation_drawing,
)
from segexplorer.render import (
    VIEW_AFTER,
    VIEW_CHANGED,
    VIEW_INPUT,
    changed_pixels,
    class_outlines,
    decode_segmap,
    mask_layers,
    multilabel_overlay,
    render_attribution,
)

SIZE = 30  # the scene's own size: the masks are known pixel for pixel
YELLOW, WHITE, BLUE, GREEN, RED, NOTHING = (16, 12), (33, 3), (5, 24), (28, 20), (6, 6), (0, 0)


def open_card(card, image, size: int = SIZE):
    runner = QueueRunner()
    doc = Document(runner, ModelChoice(str(card), "default", "cpu", size))
    events: dict[str, list] = {"failed": [], "saved": [], "notice": []}
    doc.failed.connect(events["failed"].append)
    doc.saved.connect(events["saved"].append)
    doc.notice.connect(events["notice"].append)
    doc.image.open(image)
    runner.run_until_idle()
    assert doc.store.prediction is not None, events["failed"]
    return doc, runner, Drawings(), events


@pytest.fixture
def detectors(multilabel_cards):
    return open_card(multilabel_cards.multilabel, multilabel_cards.image)


def engine_session(card, image, size: int = SIZE) -> Session:
    model = load_model(card, None, "cpu")
    return Session(model, preprocess(load_image(image), size, model.normalization))


# ------------------------------------------------------------------------- the classes
def test_a_multilabel_card_opens_with_the_models_own_overlapping_masks(detectors,
                                                                       multilabel_cards):
    doc, runner, drawings, events = detectors
    pred = doc.store.prediction
    assert not events["failed"] and pred.multilabel
    np.testing.assert_array_equal(pred.masks, known_masks())
    reference = engine_session(multilabel_cards.multilabel, multilabel_cards.image).predict()
    np.testing.assert_array_equal(pred.masks, reference.masks)
    # a multi-label model has no background class: the largest class is explained first
    assert doc.view.target == reference.present_classes[0] == 1
    assert default_target([0, 2], background=False) == 0 and default_target([0, 2]) == 2


def test_the_segmentation_is_each_class_a_layer_with_its_outline_not_one_colour_map(
        detectors):
    doc, runner, drawings, _ = detectors
    doc.layers.chosen = SEGMENTATION
    view = present(doc, drawings)
    pred, colors = doc.store.prediction, doc.store.class_colors()
    overlay = view.area.canvas.overlay
    expected = mask_layers(pred.masks, colors, LAYER_ALPHA)
    lines = class_outlines(pred.masks, colors)
    expected[lines[..., 3] > 0] = lines[lines[..., 3] > 0]
    np.testing.assert_array_equal(overlay, expected)
    assert view.area.canvas.opacity == 0.6  # the layer's own opacity, as for any model
    # pixels in no class are transparent (the image shows), never given a class
    nothing = ~known_masks().any(axis=0)
    assert (overlay[nothing, 3] == 0).all() and (overlay[~nothing, 3] > 0).all()
    # an overlap mixes both colours: yellow's inside is neither red's nor green's layer
    x, y = 18, 14  # inside the yellow square, off every outline
    red_only = mask_layers(pred.masks[:1], colors[:1], LAYER_ALPHA)[y, x]
    assert tuple(overlay[y, x]) != tuple(red_only) and overlay[y, x, 3] > red_only[3]
    # each class's outline in its own colour: the blue square's corner
    assert tuple(overlay[20, 2, :3]) == tuple(colors[2]) and overlay[20, 2, 3] == 255


def test_the_legend_lists_each_classs_own_share_and_the_no_class_share(detectors):
    doc, runner, drawings, _ = detectors
    doc.layers.chosen = SEGMENTATION
    legend = present(doc, drawings).area.footer.legend
    pred, colors = doc.store.prediction, doc.store.class_colors()
    assert [e.cls for e in legend] == [*pred.present_classes, None]
    for entry in legend[:-1]:
        assert entry.name == CLASSES[entry.cls] and entry.shown
        assert entry.share == format_share(pred.share(entry.cls))
        assert entry.rgb == tuple(int(v) for v in colors[entry.cls])
    nothing = legend[-1]
    assert (nothing.name, nothing.rgb) == ("no class", (0, 0, 0))
    assert nothing.share == format_share(LABEL_SETS[()] / (30 * 40))
    shares = [pred.share(c) for c in range(3)]
    assert sum(shares) + pred.no_class_share > 1  # overlaps: more than 100 % in all
    classes = present(doc, drawings).classes
    assert classes.toggles and classes.hidden == frozenset()
    assert format_share(sum(shares)) in classes.note
    assert format_share(pred.no_class_share) in classes.note


def test_a_hidden_class_leaves_the_segmentation_and_is_greyed_in_the_legend(detectors):
    doc, runner, drawings, _ = detectors
    doc.layers.chosen = SEGMENTATION
    before = present(doc, drawings).area.canvas.overlay
    doc.layers.toggle_class(0)  # the legend's click on 'red'
    assert runner.pending() == []  # drawing only
    view = present(doc, drawings)
    pred, colors = doc.store.prediction, doc.store.class_colors()
    np.testing.assert_array_equal(view.area.canvas.overlay,
                                  label_layers(pred.masks, colors, hidden={0}))
    red_only = pred.masks[0] & ~pred.masks[1:].any(axis=0)
    assert (view.area.canvas.overlay[red_only, 3] == 0).all()
    assert {e.cls: e.shown for e in view.area.footer.legend if e.cls is not None} == {
        0: False, 1: True, 2: True}
    assert view.classes.hidden == frozenset({0})
    doc.layers.set_class_visible(0, True)
    np.testing.assert_array_equal(present(doc, drawings).area.canvas.overlay, before)


def test_hover_lists_every_class_present_with_its_probability_or_no_class(detectors):
    doc, runner, drawings, _ = detectors
    pred = doc.store.prediction
    for x, y in (YELLOW, WHITE, BLUE, NOTHING):
        text = describe_pixel(doc, drawings, x, y)
        found = pred.describe_pixel(x, y)
        for p in found:
            assert (f"{CLASSES[p.cls]}: score {p.score:.3g}, p {p.probability * 100:.0f} %"
                    in text)
        assert len(found) == {YELLOW: 2, WHITE: 3, BLUE: 1, NOTHING: 0}[(x, y)]
        assert ("no class" in text) == (not found)
    # the order is the engine's: most probable first
    text = describe_pixel(doc, drawings, *WHITE)
    names = [CLASSES[p.cls] for p in pred.describe_pixel(*WHITE)]
    assert [text.index(f"{n}: ") for n in names] == sorted(text.index(f"{n}: ")
                                                            for n in names)
    # a click picks the most probable class there; a pixel in no class picks none
    assert class_at(pred, *YELLOW) == pred.describe_pixel(*YELLOW)[0].cls
    assert class_at(pred, *NOTHING) is None and class_at(pred, 99, 0) is None


# ------------------------------------------------------------------------- explaining
def test_the_segments_are_the_label_set_partition_and_the_window_says_so(detectors):
    doc, runner, drawings, _ = detectors
    pred = doc.store.prediction
    expected = label_set_segments(known_masks(), "class")
    for kind in ("class", "component"):
        np.testing.assert_array_equal(doc.ablation.segments_for(kind).ids,
                                      pred.segments(kind).ids)
    np.testing.assert_array_equal(doc.ablation.segments_for("class").ids, expected.ids)
    assert doc.store.segment_count("class") == len(LABEL_SETS) == expected.count
    view = present(doc, drawings)
    assert dict(view.explain.segment_labels) == LABEL_SET_SEGMENT_LABELS
    assert "label set" in view.explain.segments_tip
    assert dict(view.ablation.segment_labels) == LABEL_SET_SEGMENT_LABELS
    assert "set of classes" in view.ablation.changed_tip
    # the score is each class's own mask's sum, not the argmax's
    assert dict(view.explain.aggregation_labels)["argmax"] == "Sum over its own mask"
    assert view.ablation.scores_title[0] == "Class scores (each class's own original mask)"
    assert view.area.footer.caption.startswith("Grad-CAM of 'green'")
    assert "own-mask score" in view.area.footer.caption
    doc.analysis.method = "ablation"
    runner.run_until_idle()
    sweep = doc.store.sweep_for("class", "zero")
    np.testing.assert_array_equal(sweep.segments.ids, expected.ids)
    view = present(doc, drawings)
    assert f"{expected.count} segments (by label set)" in view.explain.status
    assert "segments by label set" in view.area.footer.caption


@pytest.mark.parametrize("method", METHODS)
def test_every_method_explains_the_multilabel_score_as_the_engine_does(detectors, method,
                                                                       multilabel_cards):
    doc, runner, drawings, events = detectors
    doc.analysis.update(method=method, n_steps=3, n_samples=3, auto_run_seconds=1e9)
    runner.run_until_idle()
    assert not events["failed"]
    session = engine_session(multilabel_cards.multilabel, multilabel_cards.image)
    options = doc.analysis.method_options()
    if method in ("gradcam", "activation"):
        ref = session.gradcam(None)
        expected = ({c: ref.activation_upsampled for c in ref.upsampled}
                    if method == "activation" else ref.upsampled)
    elif method == "ablation":
        sweep = session.sweep(session.predict().segments("class"))
        expected = {c: sweep.attribution_map(c) for c in session.predict().present_classes}
    else:
        expected = compute(session, method, None, options).maps
    for target in doc.store.prediction.present_classes:
        doc.view.target = target
        view = present(doc, drawings)
        assert runner.pending() == []
        drawn = render_attribution(expected[target], doc.image.prepared.rgb,
                                   "blended_heat_map", "all").rgba
        np.testing.assert_array_equal(view.area.canvas.overlay, drawn)


def test_hiding_the_target_hides_its_own_mask_overlaps_included(detectors):
    doc, runner, drawings, _ = detectors
    doc.layers.chosen = ATTRIBUTION
    doc.view.target = 0  # red: its mask includes yellow and white, where others overlap
    gradcam = doc.store.gradcam_for()
    doc.view.hide_target = True
    present(doc, drawings)
    shown = drawings.current_attr
    red = known_masks()[0]
    assert (shown[red] == 0).all()
    np.testing.assert_array_equal(shown[~red], gradcam.upsampled[0][~red])


# ------------------------------------------------------------------------- ablating
def test_a_click_ablates_the_label_set_under_it_and_shows_the_masks_after(detectors):
    doc, runner, drawings, events = detectors
    pred, colors = doc.store.prediction, doc.store.class_colors()
    doc.ablation.set_active(True)
    doc.ablation.click(*YELLOW)
    runner.run_until_idle()
    entry = doc.ablation.shown
    assert entry is not None and not events["failed"]
    segments = pred.segments("class")
    (seg,) = [s for s in segments.info if s.id in entry.selection.ids]
    assert seg.classes == (0, 1)  # red and green: yellow's label set
    reference = engine_session(doc.model.architecture, doc.image.source.path)
    outcome = reference.ablate(reference.predict().segments("class"), entry.selection.ids)
    np.testing.assert_array_equal(entry.outcome.masks_after, outcome.masks_after)
    np.testing.assert_array_equal(entry.outcome.after, outcome.after)
    # changed: a pixel whose set of classes changed
    np.testing.assert_array_equal(entry.outcome.changed,
                                  np.any(outcome.masks_after != pred.masks, axis=0))
    assert entry.outcome.changed.any()
    # the canvas: the masks after as layers over the ablated input, the changed pixels
    for name, drawn in ((VIEW_INPUT, outcome.ablated_input),
                        (VIEW_AFTER, multilabel_overlay(outcome.ablated_input,
                                                        outcome.masks_after, colors)),
                        (VIEW_CHANGED, changed_pixels(outcome.changed, pred.image))):
        doc.ablation.set_view(name)
        view = present(doc, drawings)
        assert doc.layers.chosen == ABLATED
        np.testing.assert_array_equal(view.area.canvas.overlay, drawn)
    # the legend of the new segmentation: each class's share after
    doc.ablation.set_view(VIEW_AFTER)
    legend = present(doc, drawings).area.footer.legend
    after = outcome.masks_after
    for e in legend[:-1]:
        assert e.share == format_share(after[e.cls].sum() / after[0].size)
    assert legend[-1].share == format_share((~after.any(axis=0)).mean())
    # the panel: the summary, the partition, each class's share before and after
    result = present(doc, drawings).ablation.result
    assert result.summary.startswith("red") and "green" in result.summary
    assert result.summary.endswith("of pixels changed their set of classes")
    assert "(by label set)" in result.details and "Shares before -> after" in result.details
    assert f"no class {format_share(pred.no_class_share)} -> " in result.details
    assert result.emphasis == frozenset({0, 1})
    np.testing.assert_array_equal(result.after, outcome.after)
    # hiding a class leaves it out of the new segmentation too
    doc.layers.toggle_class(1)
    np.testing.assert_array_equal(
        present(doc, drawings).area.canvas.overlay,
        multilabel_overlay(outcome.ablated_input, outcome.masks_after, colors,
                           visible=[0, 2]))


def test_the_sweep_answers_label_set_clicks_without_a_forward_pass(detectors):
    doc, runner, drawings, _ = detectors
    doc.ablation.set_active(True)
    doc.ablation.precompute_sweep()
    runner.run_until_idle()
    started = runner.started_count
    doc.ablation.click(*BLUE)
    assert runner.pending() == [] and runner.started_count == started
    answered = doc.ablation.shown
    assert answered.outcome.from_cache
    reference = engine_session(doc.model.architecture, doc.image.source.path)
    computed = reference.ablate(reference.predict().segments("class"), answered.selection.ids)
    np.testing.assert_array_equal(answered.outcome.masks_after, computed.masks_after)
    np.testing.assert_array_equal(answered.outcome.changed, computed.changed)
    np.testing.assert_allclose(answered.outcome.after, computed.after, rtol=1e-5)


def test_brush_and_lasso_regions_ablate_a_multilabel_model(detectors):
    doc, runner, drawings, events = detectors
    doc.ablation.set_tool("lasso")
    doc.ablation.draw_region("lasso", [(2, 2), (12, 2), (12, 12), (2, 12)])
    runner.run_until_idle()
    lasso = doc.ablation.shown
    assert lasso is not None and not events["failed"]
    assert lasso.outcome.masks_after is not None and lasso.label.startswith("drawn region")
    doc.ablation.set_tool("brush")
    doc.ablation.draw_region("brush", [(30, 8), (36, 8)], radius=2)
    runner.run_until_idle()
    assert doc.ablation.shown is not lasso and doc.ablation.shown.outcome.masks_after is not None


def test_the_target_ablated_layer_replaces_every_pixel_of_its_mask(detectors):
    doc, runner, drawings, _ = detectors
    doc.view.target = 0
    doc.layers.chosen = ABLATED
    runner.run_until_idle()
    overlay = present(doc, drawings).area.canvas.overlay
    red = known_masks()[0]
    assert overlay is not None
    assert (overlay[red] != scene()[red]).any(axis=-1).all()  # yellow and white too
    np.testing.assert_array_equal(overlay[~red], scene()[~red])


# ------------------------------------------------------------------------- evaluate, export
def test_the_evaluation_runs_on_the_label_set_segments(detectors):
    from segexplorer.engine.evaluation import evaluate
    from segexplorer.engine.evaluation_plan import EvaluationSettings

    settings = dict(pixel_steps=4, chance_runs=2, mprt_steps=2, infidelity_samples=2,
                    sensitivity_samples=2)
    doc, runner, drawings, events = detectors
    doc.evaluation.methods = ("gradcam", "ablation")
    doc.evaluation.update_settings(**settings)
    doc.evaluation.run()
    runner.run_until_idle()
    assert not events["failed"]
    result = doc.evaluation.result()
    expected = evaluate(doc.store.session.derive(), ("gradcam", "ablation"), None,
                        doc.analysis.method_options(), EvaluationSettings(**settings))
    for target in result.targets:
        for method in ("gradcam", "ablation"):
            ours, theirs = result.result(method, target), expected.result(method, target)
            for name, curve in ours.curves.items():
                assert curve.auc == pytest.approx(theirs.curves[name].auc)
    assert present(doc, drawings).evaluation.curves is not None


def test_export_all_and_the_ablation_export_write_the_multilabel_files(detectors, tmp_path):
    from segexplorer.gui.document.exports import Exports

    doc, runner, drawings, events = detectors
    exports = Exports(doc)
    exports.all(tmp_path / "all")
    runner.run_until_idle()
    report = json.loads((tmp_path / "all" / "report.json").read_text())
    assert report["outputs"] == "multilabel"
    assert report["ablation"]["segments_partition"].startswith("label set")
    with np.load(tmp_path / "all" / "attributions.npz") as npz:
        np.testing.assert_array_equal(npz["masks"], known_masks().astype(npz["masks"].dtype))
    doc.ablation.click(*YELLOW)
    runner.run_until_idle()
    exports.ablation(tmp_path / "ablation")
    runner.run_until_idle()
    changes = json.loads((tmp_path / "ablation" / "changes.json").read_text())
    assert changes["changed_meaning"] == "pixels whose set of classes changed"
    assert changes["segments"][0]["classes"] == [0, 1]
    assert not events["failed"]


def test_a_session_reopens_a_multilabel_model_with_its_ablations(detectors, tmp_path,
                                                                 multilabel_cards):
    from segexplorer.gui.document.sessions import open_session, save

    doc, runner, drawings, _ = detectors
    doc.ablation.click(*YELLOW)
    runner.run_until_idle()
    doc.ablation.click(*BLUE, add=True)
    runner.run_until_idle()
    path = tmp_path / "labels.segx"
    save(doc, path)
    runner.run_until_idle()
    runner2 = QueueRunner()
    other = Document(runner2, ModelChoice(str(multilabel_cards.multilabel), "default", "cpu",
                                          SIZE))
    failed: list = []
    other.failed.connect(failed.append)
    open_session(other, path)
    runner2.run_until_idle()
    assert not failed
    assert other.store.prediction.multilabel
    assert [e.selection.ids for e in other.ablation.history] == [
        e.selection.ids for e in doc.ablation.history]
    for ours, theirs in zip(other.ablation.history, doc.ablation.history, strict=True):
        np.testing.assert_array_equal(ours.outcome.masks_after, theirs.outcome.masks_after)


# ------------------------------------------------------------------------- the hint
def test_a_softmax_card_on_a_multilabel_model_shows_the_hint_once_until_dismissed(
        multilabel_cards, tmp_path):
    cards = multilabel_cards
    doc, runner, drawings, _ = open_card(cards.trained_multilabel, cards.image)
    pred = doc.store.prediction
    reference = engine_session(cards.trained_multilabel, cards.image).predict()
    assert not pred.multilabel and pred.hint == reference.hint != ""
    np.testing.assert_array_equal(pred.class_map, reference.class_map)  # unchanged
    hint = present(doc, drawings).area.hint
    assert hint == f"Note: {reference.hint}" and 'outputs = "multilabel"' in hint
    doc.model.dismiss_hint()
    assert present(doc, drawings).area.hint == ""
    np.testing.assert_array_equal(doc.store.prediction.class_map, reference.class_map)
    other = tmp_path / "other.png"
    from PIL import Image

    Image.fromarray(scene()[::-1].copy()).save(other)
    doc.image.open(other)  # the same model on another image: dismissed stays dismissed
    runner.run_until_idle()
    assert present(doc, drawings).area.hint == ""
    # a real softmax model, and a multi-label card, never get it
    for card in (cards.trained_softmax, cards.multilabel):
        doc2, _, drawings2, _ = open_card(card, cards.image)
        assert doc2.store.prediction.hint == "" and present(doc2, drawings2).area.hint == ""


# ------------------------------------------------------------------------- softmax unchanged
def test_softmax_models_keep_one_colour_per_pixel_and_plain_legend(multilabel_cards):
    doc, runner, drawings, _ = open_card(multilabel_cards.softmax, multilabel_cards.image)
    pred = doc.store.prediction
    assert not pred.multilabel
    doc.layers.chosen = SEGMENTATION
    view = present(doc, drawings)
    np.testing.assert_array_equal(view.area.canvas.overlay,
                                  decode_segmap(pred.class_map, pred.colors))
    np.testing.assert_array_equal(segmentation_drawing(pred, pred.colors, hidden={0}),
                                  decode_segmap(pred.class_map, pred.colors))
    assert all(e.share == "" and e.cls is None for e in view.area.footer.legend)
    assert legend_entries(pred, pred.colors) == view.area.footer.legend
    assert not view.classes.toggles and view.classes.note == ""
    assert dict(view.explain.segment_labels) == {"class": "By class",
                                                 "component": "By connected component"}
    assert view.explain.segments_tip == ""
    assert class_at(pred, *NOTHING) == int(pred.class_map[0, 0])


def test_the_quick_preview_of_a_multilabel_model_draws_its_masks(multilabel_cards):
    from segexplorer.gui.document.preview import PREVIEW_SIZE

    runner = QueueRunner()
    doc = Document(runner, ModelChoice(str(multilabel_cards.multilabel), "default", "cpu",
                                       PREVIEW_SIZE + 40), canvas_layer=SEGMENTATION)
    drawings, seen = Drawings(), []

    def during(job) -> bool:
        if doc.preview.result is not None and doc.store.prediction is None and not seen:
            seen.append(present(doc, drawings))
        return False

    runner.cancel_during = during
    doc.image.open(multilabel_cards.image)
    runner.run_until_idle()
    assert seen, "no preview was shown"
    view = seen[0]
    assert view.area.previewing and view.classes.toggles
    overlay = view.area.canvas.overlay
    assert overlay.shape == (*doc.image.prepared.shape, 4)
    assert overlay[0, 0, 3] == 0 and overlay[overlay.shape[0] // 2, overlay.shape[1] // 2, 3] > 0
    assert doc.store.prediction.multilabel
