"""The window's comparison without Qt (``gui/document/comparison.py`` and its views): the
numbers the Compare panel shows are the engine's own ``compare_sessions`` on the same
models; ablating in both models is ``ablate_both``; B's jobs go through the job table
(cancellable, stale results dropped); a pair the device cannot hold is refused in one
line; closing returns to one model; a session file keeps the comparison.

Tiny untrained models at a small working size: A is the tiny model, B the same with its
classifier row for one class scaled (as tests/test_compare.py's pair).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from segexplorer.engine.analysis import ExplainRequest
from segexplorer.engine.budget import ENV_VAR
from segexplorer.engine.compare import region, to_grid
from segexplorer.engine.compare_run import ablate_both, compare_sessions, load_pair
from segexplorer.engine.image import load_image
from segexplorer.engine.models import build_untrained, get_architecture
from segexplorer.gui.document import Document, QueueRunner
from segexplorer.gui.document.canvas_view import canvas_view
from segexplorer.gui.document.choices import ModelChoice
from segexplorer.gui.document.comparison import (
    CHANGED,
    ComparisonSituation,
    plan_comparison,
)
from segexplorer.gui.document.comparison_split import display_grid, split_view
from segexplorer.gui.document.comparison_view import comparison_view, target_pair
from segexplorer.gui.document.drawings import Drawings
from segexplorer.gui.document.keys import (
    ComparisonKey,
    ImageKey,
    ModelKey,
    PairAblationKey,
    PredictKey,
    SecondKey,
    Selection,
)
from segexplorer.gui.document.requests import AblateBoth, CompareMaps, PrepareSecond

SIZE = 48
SCALED_CLASS = 18


@pytest.fixture(scope="module")
def scaled_weights(tmp_path_factory) -> Path:
    state = build_untrained(get_architecture("tiny")).state_dict()
    state["head.weight"][SCALED_CLASS] *= 1.2
    state["head.bias"][SCALED_CLASS] *= 1.2
    path = tmp_path_factory.mktemp("scaled") / "tiny_sofa_x1.2.pt"
    torch.save(state, path)
    return path


def make_doc(size: int = SIZE):
    runner = QueueRunner()
    doc = Document(runner, ModelChoice("tiny", "untrained", "cpu", size))
    failures: list = []
    doc.failed.connect(failures.append)
    return doc, runner, failures


def comparing(image: Path, weights: Path, **analysis):
    """A document on ``image`` comparing the tiny model with the scaled copy."""
    doc, runner, failures = make_doc()
    if analysis:
        doc.analysis.update(**analysis)
    doc.image.open(image)
    runner.run_until_idle()
    doc.comparison.open(ModelChoice("tiny", str(weights), "cpu", SIZE))
    runner.run_until_idle()
    assert not failures, failures
    return doc, runner, failures


def reference(image: Path, weights: Path, method: str, **options):
    """The engine's own comparison of the same two models (fresh models and sessions)."""
    a = ExplainRequest(image=str(image), model="tiny", weights="untrained", device="cpu",
                       size=SIZE, methods=(method,), **options)
    b = ExplainRequest(image=str(image), model="tiny", weights=str(weights), device="cpu",
                       size=SIZE, methods=(method,), **options)
    pair = load_pair(a, b, load_image(image))
    sa, sb = pair.sessions()
    return compare_sessions(sa, sb, pair.request_a, pair.request_b), (sa, sb)


def assert_rows_equal(shown, engine) -> None:
    assert [r.name for r in shown] == [r["class"] for r in engine]
    for row, expected in zip(shown, engine, strict=True):
        for key, value in expected.items():
            got = row.values[key]
            if isinstance(value, float) and key.endswith("_spearman"):
                assert got == pytest.approx(value, rel=1e-6, abs=1e-9), key
            elif isinstance(value, float) and "difference" in key:
                assert got == pytest.approx(value, rel=1e-5, abs=1e-9), key
            else:
                assert got == value, key


# -- the numbers are the engine's --------------------------------------------------------------
@pytest.mark.parametrize("method", ["gradcam", "ablation"])
def test_the_panels_numbers_are_compare_sessions_own(blocks_image, scaled_weights, method):
    doc, runner, _ = comparing(blocks_image, scaled_weights, method=method)
    view = comparison_view(doc, Drawings())
    engine, _ = reference(blocks_image, scaled_weights, method)
    assert view.rows, view.status
    assert_rows_equal(view.rows, engine.rows())
    assert view.headers[-1].startswith("rho")
    # most changed first, as the engine orders them
    assert [r.name for r in view.rows] == [c.name for c in engine.classes]
    assert "of the pixels changed class" in view.changed
    # the maps the split view draws are the engine's, on the display grid
    shape = display_grid(doc)
    pair = target_pair(doc)
    assert pair is not None and shape == engine.grid
    result = doc.comparison.result()
    for side in ("a", "b"):
        np.testing.assert_allclose(result.comparison.map_on_grid(side, method, pair, shape),
                                   engine.map_on_grid(side, method, pair, shape),
                                   rtol=1e-5, atol=1e-7)
    split = split_view(doc, Drawings())
    assert len(split.panes) == 3 and all(p.overlay is not None for p in split.panes)
    difference = engine.difference(method, pair, shape)
    assert split.third_bar is not None
    assert split.third_bar.scale == pytest.approx(float(np.abs(difference).max()), rel=1e-5)
    assert split.maps_bar.scale == pytest.approx(max(
        float(np.abs(engine.map_on_grid(s, method, pair, shape)).max()) for s in "ab"),
        rel=1e-5)


def test_a_costly_method_compares_once_a_has_it_computed(blocks_image, scaled_weights):
    # integrated gradients waits for Compute on A (auto-run is off): so does B
    doc, runner, failures = comparing(blocks_image, scaled_weights, method="ig", n_steps=4,
                                      auto_run_seconds=0.0)
    assert doc.comparison.result() is None and doc.comparison.waits_for_a()
    assert "not computed yet" in comparison_view(doc, Drawings()).status
    doc.compute()
    runner.run_until_idle()
    assert not failures
    view = comparison_view(doc, Drawings())
    engine, _ = reference(blocks_image, scaled_weights, "ig", n_steps=4)
    assert_rows_equal(view.rows, engine.rows())


def test_model_b_runs_on_as_device_at_its_own_working_size(blocks_image, scaled_weights):
    doc, runner, _ = comparing(blocks_image, scaled_weights)
    doc.comparison.model.size = 32
    runner.run_until_idle()
    second = doc.comparison.held()
    assert second is not None and second.session.image.size == 32
    assert second.session.image.shape != doc.image.prepared.shape
    assert second.model.device.type == "cpu"
    assert "Working image" in comparison_view(doc, Drawings()).model.working_note
    # the comparison is on the original image's grid, whatever the two working sizes
    assert doc.comparison.result().comparison.grid == (96, 128)


def test_b_starts_as_as_own_model_without_a_second_copy(blocks_image):
    doc, runner, failures = make_doc()
    doc.image.open(blocks_image)
    runner.run_until_idle()
    doc.comparison.open()  # Model > Compare With...: B is A until its weights are chosen
    runner.run_until_idle()
    second = doc.comparison.held()
    assert second is not None and second.shared and second.model is doc.model.loaded
    view = comparison_view(doc, Drawings())
    assert "no second copy" in view.memory
    for row in view.rows:
        assert row.values["iou"] in (1.0, None) and row.values["score_a"] == row.values[
            "score_b"]


# -- ablating in both ------------------------------------------------------------------------
def test_a_click_in_ablate_mode_ablates_the_common_segment_in_both(blocks_image,
                                                                    scaled_weights):
    doc, runner, _ = comparing(blocks_image, scaled_weights)
    doc.ablation.set_active(True)
    shape = display_grid(doc)
    doc.comparison.click(30, 20, shape)
    assert doc.comparison.shown() is None  # a job, on the compare channel
    assert runner.pending() == ["compare"]
    runner.run_until_idle()
    entry = doc.comparison.shown()
    assert entry is not None
    _, (sa, sb) = reference(blocks_image, scaled_weights, "gradcam")
    common = doc.comparison.common_segments()
    expected = ablate_both(sa, sb, common, [common.at(30, 20).id])
    view = comparison_view(doc, Drawings())
    for i, side in enumerate("ab"):
        np.testing.assert_array_equal(entry.ablation.outcome(side).after,
                                      expected.outcome(side).after)
        np.testing.assert_array_equal(view.scores[i].after, expected.outcome(side).after)
        np.testing.assert_array_equal(view.scores[i].before, expected.outcome(side).before)
    # the outline of the ablated segment is drawn in all three views
    split = split_view(doc, Drawings())
    assert all(p.outline is not None for p in split.panes)
    # Esc: back to the original in both
    doc.escape()
    assert doc.comparison.selection is None and doc.comparison.shown() is None


def test_a_drawn_region_is_ablated_in_both_models(blocks_image, scaled_weights):
    doc, runner, _ = comparing(blocks_image, scaled_weights)
    shape = display_grid(doc)
    doc.comparison.draw_region("lasso", [(10, 10), (60, 10), (60, 40), (10, 40)], shape, 4)
    assert doc.ablation.active  # drawing enters ablate mode
    runner.run_until_idle()
    entry = doc.comparison.shown()
    assert entry is not None and entry.key.selection.kind.startswith("region")
    _, (sa, sb) = reference(blocks_image, scaled_weights, "gradcam")
    from segexplorer.gui.document.ablation_entries import region_mask

    mask = to_grid(region_mask("lasso", [(10, 10), (60, 10), (60, 40), (10, 40)], shape, 4),
                   (96, 128))
    expected = ablate_both(sa, sb, region(mask), [1])
    for side in "ab":
        np.testing.assert_array_equal(entry.ablation.outcome(side).after,
                                      expected.outcome(side).after)


# -- jobs: one channel, cancellable, stale results dropped ---------------------------------------
def test_the_comparison_plans_one_job_at_a_time_in_order():
    predict = PredictKey(ModelKey("tiny", "untrained", "cpu"), ImageKey(1, 48), "fp32")
    pair = SecondKey(predict, ModelKey("tiny", "b.pt", "cpu"), 48)
    ablation = PairAblationKey(pair, Selection("class", "zero", (1,)))
    comparison = ComparisonKey(pair, "gradcam", ())
    assert plan_comparison(ComparisonSituation(False, pair, None, None, None)) == ()
    assert plan_comparison(ComparisonSituation(True, None, None, None, None)) == ()
    assert plan_comparison(ComparisonSituation(True, pair, None, ablation, comparison)) == (
        PrepareSecond(pair),)
    assert plan_comparison(ComparisonSituation(True, pair, pair, ablation, comparison)) == (
        AblateBoth(ablation),)
    assert plan_comparison(ComparisonSituation(True, pair, pair, None, comparison)) == (
        CompareMaps(comparison),)


def test_a_newer_b_replaces_the_job_on_its_way_and_only_its_result_is_shown(
        blocks_image, scaled_weights):
    doc, runner, failures = make_doc()
    doc.image.open(blocks_image)
    runner.run_until_idle()
    doc.comparison.open(ModelChoice("tiny", "untrained", "cpu", SIZE))
    doc.comparison.model.weights = str(scaled_weights)  # before B's job ran
    assert runner.pending() == ["compare"]  # the first request was replaced
    runner.run_until_idle()
    assert not failures
    second = doc.comparison.held()
    assert second is not None and second.key.model.weights == str(scaled_weights)
    # a comparison computed for the old B is dropped when it arrives
    doc.comparison.model.weights = "untrained"
    runner.run_next()  # B's new prediction
    key = doc.comparison.comparison_key()
    doc.comparison.model.weights = str(scaled_weights)  # and back, before it compares
    runner.run_until_idle()
    result = doc.comparison.result()
    assert result is not None and result.key != key
    assert result.key.pair.model.weights == str(scaled_weights)


def test_a_cancelled_comparison_waits_for_compute(blocks_image, scaled_weights):
    doc, runner, failures = make_doc()
    doc.image.open(blocks_image)
    runner.run_until_idle()
    runner.cancel_during = lambda job: job.label.startswith("Comparing Layer")
    doc.comparison.open(ModelChoice("tiny", str(scaled_weights), "cpu", SIZE))
    runner.run_until_idle()
    assert doc.comparison.held() is not None and doc.comparison.result() is None
    assert "cancelled" in comparison_view(doc, Drawings()).status
    runner.cancel_during = None
    runner.run_until_idle()
    assert doc.comparison.result() is None  # not asked again by itself
    doc.compute()
    runner.run_until_idle()
    assert doc.comparison.result() is not None and not failures


# -- memory, closing, sessions --------------------------------------------------------------------
def test_a_pair_the_device_cannot_hold_is_refused_in_one_line(blocks_image, scaled_weights,
                                                              monkeypatch):
    monkeypatch.setenv(ENV_VAR, repr(4 / 2**20))  # a 4 KiB budget  # the tiny pair needs more than this
    doc, runner, failures = make_doc()
    doc.image.open(blocks_image)
    runner.run_until_idle()
    doc.comparison.open(ModelChoice("tiny", str(scaled_weights), "cpu", SIZE))
    runner.run_until_idle()
    assert len(failures) == 1
    line = failures[0].message
    assert "\n" not in line and line.startswith("The two models do not fit on cpu")
    assert "memory budget 4.0 KiB (SEGEXPLORER_GPU_MEMORY)" in line and "smaller working size" in line
    view = comparison_view(doc, Drawings())
    assert view.refused and view.status == line and not view.rows
    assert doc.comparison.held() is None
    # the same request is not retried by itself; another B is
    runner.run_until_idle()
    assert len(failures) == 1
    monkeypatch.setenv(ENV_VAR, "1")
    doc.comparison.model.size = 40
    runner.run_until_idle()
    assert doc.comparison.held() is not None and not comparison_view(doc, Drawings()).refused
    assert "memory budget 1.0 GiB" in comparison_view(doc, Drawings()).memory


def test_closing_the_comparison_returns_to_one_model(blocks_image, scaled_weights):
    doc, runner, _ = comparing(blocks_image, scaled_weights)
    assert canvas_view(doc, Drawings()).comparing
    doc.comparison.close()
    assert not doc.comparison.active and doc.comparison.held() is None
    assert not canvas_view(doc, Drawings()).comparing
    assert not split_view(doc, Drawings()).active
    assert "compare" not in runner.pending() and not doc.jobs.is_running("compare")
    # A's own work goes on as before
    doc.analysis.method = "ablation"
    runner.run_until_idle()
    assert doc.store.has_result()
    assert doc.comparison.result() is None


def test_a_class_only_b_predicts_is_picked_from_the_table(blocks_image, scaled_weights):
    doc, runner, _ = comparing(blocks_image, scaled_weights)
    rows = comparison_view(doc, Drawings()).rows
    doc.comparison.pick(rows[-1].name)
    assert target_pair(doc).name == rows[-1].name
    assert doc.view.target == target_pair(doc).a
    doc.comparison.third = CHANGED
    split = split_view(doc, Drawings())
    assert split.panes[2].overlay is not None
    engine, _ = reference(blocks_image, scaled_weights, "gradcam")
    assert [label for label, _c in split.legend] == [
        f"{t.label} {format_share(t.share)}" for t in engine.transitions[:12]]


def format_share(share: float) -> str:
    from segexplorer.gui.document.formatting import format_share as fmt

    return fmt(share)


def test_a_session_file_keeps_the_comparison(blocks_image, scaled_weights, tmp_path):
    from segexplorer.gui.document.session_file import read
    from segexplorer.gui.document.sessions import open_session, save

    doc, runner, _ = comparing(blocks_image, scaled_weights)
    doc.comparison.third = CHANGED
    path = tmp_path / "pair.segx"
    save(doc, path)
    runner.run_until_idle()
    saved = read(path).comparison
    assert saved is not None and saved["model"]["weights"] == str(scaled_weights)
    other, runner2, failures = make_doc()
    open_session(other, path)
    runner2.run_until_idle()
    assert not failures
    assert other.comparison.active and other.comparison.third == CHANGED
    assert other.comparison.model.weights == str(scaled_weights)
    assert_rows_equal(comparison_view(other, Drawings()).rows,
                      doc.comparison.result().comparison.rows())
    # a session without a comparison closes the one that is open
    doc.comparison.close()
    save(doc, path)
    runner.run_until_idle()
    assert read(path).comparison is None
    open_session(other, path)
    runner2.run_until_idle()
    assert not other.comparison.active
