"""The registry's methods in the window's document (no Qt): chosen, costed, computed once
for every class, cached, cancelled, exported; the Shapley panel's values and pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_document import opened, present
from tiny_models import COLOUR

from segexplorer.engine.attribution import compute
from segexplorer.engine.image import load_image, preprocess
from segexplorer.engine.methods import METHOD_REGISTRY, METHODS, MethodOptions
from segexplorer.engine.models import load_model
from segexplorer.engine.session import Session
from segexplorer.gui.document.choices import METHOD_LABELS
from segexplorer.gui.document.explain_view import GUIDED_NOTE
from segexplorer.gui.document.exports import Exports
from segexplorer.gui.document.results import OTHER_METHODS
from segexplorer.render import render_attribution

SIZE = 40


def reference_maps(path, method: str, options: MethodOptions, architecture: str = "tiny"):
    session = Session(load_model(architecture, "untrained", "cpu"),
                      preprocess(load_image(path), SIZE))
    return compute(session, method, None, options)


def test_the_method_list_is_the_registry():
    assert tuple(METHOD_LABELS) == METHODS
    assert all(METHOD_LABELS[m] == METHOD_REGISTRY[m].label for m in METHODS)
    assert set(OTHER_METHODS) == set(METHODS) - {"gradcam", "activation", "ablation"}


@pytest.mark.parametrize("method", ["shapley", "occlusion", "ig", "layer_ig", "hirescam",
                                    "guided_gradcam"])
def test_each_method_is_computed_once_for_every_class_and_drawn_as_captum_would(
        blocks_image, method):
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    # every cost runs unasked (the estimate is timed: on a loaded machine occlusion's may
    # pass the default gate, which the cost-gate tests below check on their own)
    doc.analysis.update(method=method, n_steps=3, auto_run_seconds=float("inf"))
    runner.run_until_idle()
    assert not events["failed"]
    maps = doc.store.method_for()
    pred = doc.store.prediction
    assert maps is not None and set(maps.maps) == set(pred.present_classes)
    expected = reference_maps(blocks_image, method, doc.analysis.method_options())
    view = present(doc, drawings)
    assert view.explain.status.startswith(METHOD_LABELS[method])
    for target in pred.present_classes[:2]:
        doc.view.target = target  # view-only: no job
        assert runner.pending() == []
        np.testing.assert_array_equal(maps.maps[target], expected.maps[target])
        view = present(doc, drawings)
        drawn = render_attribution(expected.maps[target], doc.image.prepared.rgb,
                                   "blended_heat_map", "all").rgba
        np.testing.assert_array_equal(view.area.canvas.overlay, drawn)
        assert METHOD_LABELS[method] in view.area.footer.caption
    # a method's result is cached: back and forth computes nothing
    doc.analysis.update(method="gradcam")
    runner.run_until_idle()
    started = runner.started_count
    doc.analysis.update(method=method)
    assert runner.pending() == [] and runner.started_count == started
    # an option the method reads computes again; one it does not read does not
    reads = METHOD_REGISTRY[method].uses
    doc.analysis.update(upsample="bilinear")
    assert (runner.pending() == ["method"]) == ("upsample" in reads)


def test_a_costly_method_shows_its_cost_and_waits_for_compute(blocks_image):
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    doc.analysis.auto_run_seconds = 0.0  # everything is costly
    doc.analysis.update(method="ig", n_steps=7)
    assert runner.pending() == []
    estimate = doc.estimate()
    assert estimate is not None and not estimate.automatic
    assert estimate.cost.forward == 7
    assert estimate.cost.backward == 7 * len(doc.store.prediction.present_classes)  # images
    view = present(doc, drawings)
    assert "images through the model (7 forward," in view.explain.status
    assert "Press Compute to run it" in view.explain.status and view.explain.can_compute
    doc.compute()  # accepts the cost
    assert runner.pending() == ["method"]
    runner.run_until_idle()
    assert doc.store.method_for() is not None
    assert present(doc, drawings).explain.status.startswith("Integrated gradients: ")
    progress = [m for channel, _d, _t, m in runner.progress if channel == "method"]
    assert any("steps" in m for m in progress)


def test_a_cancelled_method_waits_for_compute(blocks_image):
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    doc.analysis.update(method="occlusion", window=8, stride=4)
    assert runner.pending() == ["method"]
    runner.cancel_during = lambda job: job.channel == "method"
    runner.run_until_idle()
    runner.cancel_during = None
    assert doc.store.method_for() is None
    doc.cancel_all()
    view = present(doc, drawings)
    assert view.explain.can_compute
    doc.compute()
    runner.run_until_idle()
    assert doc.store.method_for() is not None


def test_the_shapley_panel_lists_values_and_the_top_interacting_pairs(blocks_image):
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    doc.analysis.update(method="shapley")
    runner.run_until_idle()
    maps = doc.store.method_for()
    assert maps is not None and maps.shapley is not None and maps.shapley.exact
    target = doc.view.target
    view = present(doc, drawings).explain.shapley
    assert view is not None and "exact" in view.heading
    table = maps.shapley
    values = sorted(table.values[:, target], key=lambda v: -abs(v))
    assert [v for _name, v in view.values] == pytest.approx(values)
    names = {doc.store.prediction.categories[s.class_index] for s in table.segments.info}
    assert {name for name, _v in view.values} == names
    pairs = table.top_pairs(target, 5)
    assert len(view.pairs) == len(pairs) and [v for _n, v in view.pairs] == [p[2] for p in pairs]
    # sampled: no pairs, and the panel says why
    doc.analysis.update(shapley_mode="sampling", n_samples=3)
    runner.run_until_idle()
    view = present(doc, drawings).explain.shapley
    assert view is not None and view.pairs == () and "exact" in view.pairs_note
    doc.analysis.update(method="gradcam")
    assert present(doc, drawings).explain.shapley is None


def test_guided_gradcam_carries_its_randomisation_warning(blocks_image):
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    assert present(doc, drawings).explain.method_note == ""
    doc.analysis.update(method="guided_gradcam")
    assert present(doc, drawings).explain.method_note == GUIDED_NOTE


def test_an_additive_model_gives_shapley_values_equal_to_ablation_and_no_interactions(
        tmp_path):
    """The colour model scores each pixel by its own colour, so a coalition's score is
    the sum of its segments' parts: Shapley values are then the ablation drops, and no
    pair of segments interacts."""
    from PIL import Image

    arr = np.full((SIZE, SIZE, 3), 200, np.uint8)
    arr[4:16, 4:16] = (230, 20, 20)
    arr[24:36, 20:36] = (20, 220, 20)
    path = tmp_path / "squares.png"
    Image.fromarray(arr).save(path)
    doc, runner, drawings, events = opened(path, COLOUR, size=SIZE)
    doc.analysis.update(method="shapley")
    runner.run_until_idle()
    table = doc.store.method_for().shapley
    doc.analysis.update(method="ablation")
    runner.run_until_idle()
    sweep = doc.store.sweep_for("class", "zero")
    scale = np.abs(sweep.table).max()
    np.testing.assert_allclose(table.values, sweep.table, atol=1e-5 * scale)
    assert np.abs(table.interactions).max() <= 1e-5 * scale


def test_export_all_adds_the_methods_computed_and_recomputes_none(blocks_image, tmp_path):
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    doc.analysis.update(method="shapley")
    runner.run_until_idle()
    shapley = doc.store.method_for()
    doc.analysis.update(method="hirescam")
    runner.run_until_idle()
    passes = doc.store.session.forward_passes
    Exports(doc).all(tmp_path / "all")
    runner.run_until_idle()
    assert events["saved"] and not events["failed"]
    # the seed's sweep (one pass per segment); Shapley and HiResCAM come from the store
    assert doc.store.session.forward_passes - passes == len(doc.store.prediction.present_classes)
    with np.load(tmp_path / "all" / "attributions.npz") as npz:
        for c in doc.store.prediction.present_classes:
            np.testing.assert_array_equal(npz[f"shapley_{c}"], shapley.maps[c])
            assert f"hirescam_raw_{c}" in npz and f"gradcam_{c}" in npz
        assert "shapley_values" in npz and "shapley_interactions" in npz
    report = json.loads((tmp_path / "all" / "report.json").read_text())
    assert report["methods"] == ["gradcam", "activation", "ablation", "shapley", "hirescam"]
    assert report["method_costs"]["shapley"]["forward_passes"] == shapley.forward
    assert report["shapley"]["exact"] is True


# ---------------------------------------------------------------------------- evaluation
EVAL = dict(pixel_steps=5, chance_runs=3, mprt_steps=2, infidelity_samples=3,
            sensitivity_samples=2)


def test_the_evaluation_shows_its_cost_runs_on_request_and_serves_every_target(
        blocks_image, tmp_path):
    from segexplorer.engine.evaluation import evaluate
    from segexplorer.engine.evaluation_plan import EvaluationSettings

    doc, runner, drawings, events = opened(blocks_image, size=32)
    doc.evaluation.methods = ("ablation", "gradcam")
    doc.evaluation.update_settings(**EVAL)
    view = present(doc, drawings).evaluation
    assert view is not None and view.can_run and view.curves is None
    assert view.cost_text.startswith("Not the full evaluation: ")  # the settings set here
    assert "At most" in view.cost_text and "for the curves" in view.cost_text
    assert [m for m, _label, chosen in view.methods if chosen] == ["gradcam", "ablation"]
    assert runner.pending() == []  # never by itself
    doc.evaluation.run()
    assert runner.pending() == ["evaluate"]
    runner.run_until_idle()
    assert not events["failed"]
    result = doc.evaluation.result()
    expected = evaluate(doc.store.session.derive(), ("gradcam", "ablation"), None,
                        doc.analysis.method_options(), EvaluationSettings(**EVAL))
    started = runner.started_count
    for target in doc.store.prediction.present_classes:
        doc.view.target = target
        view = present(doc, drawings).evaluation
        assert runner.started_count == started  # a lookup, no job
        assert view.curves is not None and not view.can_run and view.can_export
        assert [row.method for row in view.areas] == ["gradcam", "ablation"]
        for row in view.areas:
            ours = expected.result(row.method, target)
            assert row.aucs == pytest.approx(
                tuple(ours.curves[n].auc for n in ("deletion_segments", "insertion_segments",
                                                   "deletion_pixels", "insertion_pixels")))
        for i in range(4):  # the best of each curve is marked once
            assert sum(row.best[i] for row in view.areas) == 1
        assert [v for _label, v, _flag in view.verdicts] == [
            expected.verdict(m, target) for m in ("gradcam", "ablation")]
        assert len(view.strip) == 1 + len(result.result("gradcam", target).mprt)
        assert view.strip[0].caption == "original"
    doc.evaluation.strip_method = "ablation"
    assert present(doc, drawings).evaluation.strip_method == "ablation"
    # exports: the numbers and the curves
    exports = Exports(doc)
    exports.evaluation_numbers(tmp_path / "numbers.json")
    exports.evaluation_numbers(tmp_path / "numbers.csv")
    exports.evaluation_curves(tmp_path / "curves.svg")
    exports.evaluation_curves(tmp_path / "all.pdf", every_target=True)
    runner.run_until_idle()
    data = json.loads((tmp_path / "numbers.json").read_text())
    assert set(data["targets"]) == {str(c) for c in result.targets}
    assert data["image"].endswith("blocks.png")
    rows = (tmp_path / "numbers.csv").read_text().splitlines()
    assert len(rows) == 1 + len(result.targets) * 2 * 4
    assert (tmp_path / "curves.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "all.pdf").read_bytes()[:4] == b"%PDF"
    # other choices: not evaluated for them
    doc.evaluation.methods = ("gradcam",)
    assert present(doc, drawings).evaluation.can_run


def test_a_cancelled_evaluation_says_so_and_runs_again(blocks_image):
    doc, runner, drawings, events = opened(blocks_image, size=32)
    doc.evaluation.methods = ("gradcam",)
    doc.evaluation.update_settings(**EVAL)
    doc.evaluation.run()
    runner.cancel_during = lambda job: job.channel == "evaluate"
    runner.run_until_idle()
    runner.cancel_during = None
    doc.cancel_all()  # what the status bar's Cancel does
    view = present(doc, drawings).evaluation
    assert doc.evaluation.result() is None and "cancelled" in view.status and view.can_run
    doc.evaluation.run()
    runner.run_until_idle()
    assert doc.evaluation.result() is not None
