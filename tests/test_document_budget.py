"""The window's memory budget and its cost gate, in the document (no Qt): the
Preferences' setting reaches every session the window makes, the status bar says the
budget beside the device, the cost gate states memory beside time, and a run's images
are described the same way before, during and after it (issue 22, issue 26 item 8)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from test_document import opened, present

from segexplorer.engine.budget import ENV_VAR, GIB, MemoryBudget, format_bytes, resolve_budget
from segexplorer.engine.errors import UserError
from segexplorer.engine.evaluation_plan import QUICK, QUICK_DESCRIPTION, EvaluationSettings
from segexplorer.gui.document.states import format_memory_setting, parse_memory_setting
from segexplorer.gui.document.window_views import budget_text

SIZE = 40
#: the evaluation settings of the quick tests: few images
EVAL = {"pixel_steps": 3, "chance_runs": 1, "mprt_steps": 1, "infidelity_samples": 2,
        "sensitivity_samples": 1}


@pytest.fixture(autouse=True)
def _no_budget_in_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


# ----------------------------------------------------------------------------- the setting
@pytest.mark.parametrize(("text", "gib"), [("auto", None), ("", None), (" Auto ", None),
                                           ("4", 4.0), ("0.5", 0.5), ("2 GiB", 2.0)])
def test_the_memory_setting_reads_auto_or_a_number_of_gib(text, gib):
    assert parse_memory_setting(text) == gib
    assert parse_memory_setting(format_memory_setting(gib)) == gib


@pytest.mark.parametrize("text", ["abc", "0", "-2", "nan", "1e9"])
def test_a_bad_memory_setting_is_refused_in_one_line_and_changes_nothing(blocks_image, text):
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    doc.model.set_memory("3")
    with pytest.raises(UserError) as refused:
        doc.model.set_memory(text)
    line = refused.value.message
    assert line.startswith("Memory budget") and "\n" not in line
    assert doc.model.memory_gib == 3.0 and doc.store.session.budget.gib == 3.0


def test_the_budget_setting_reaches_the_session_and_the_status_bar(blocks_image):
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    auto = resolve_budget("cpu")
    session = doc.store.session
    assert session.budget.source.startswith("default: half of the")
    device = present(doc, drawings).chrome.device_text
    assert device.endswith(f"· memory budget {format_bytes(session.budget.limit)} (half the "
                           "free memory)")
    assert "CPU" in device or "cpu" in device
    assert budget_text(doc) == session.budget.describe()  # in full (the Preferences)
    assert abs(session.budget.limit - auto.limit) < 0.2 * auto.limit  # the engine's default
    # a GiB value applies to the session already made and to every new one
    doc.model.set_memory("0.25")
    assert session.budget == MemoryBudget.of(0.25, "cpu", "Preferences")
    assert present(doc, drawings).chrome.device_text.endswith(
        "· memory budget 256 MiB (set in Preferences)")
    doc.model.size = SIZE - 8  # a new prediction: a new session, under the same budget
    runner.run_until_idle()
    assert doc.store.session is not session
    assert doc.store.session.budget.limit == int(0.25 * GIB)
    # auto: the engine's default again (the environment variable first)
    doc.model.set_memory("auto")
    assert doc.store.session.budget.source.startswith("default")


def test_the_environment_variable_is_what_auto_means_when_set(blocks_image, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "1.5")
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    assert doc.store.session.budget.limit == int(1.5 * GIB)
    assert present(doc, drawings).chrome.device_text.endswith(f"({ENV_VAR})")
    doc.model.set_memory("0.5")  # the Preferences' value comes first
    assert doc.store.session.budget.source == "Preferences"


def test_a_tight_budget_chunks_the_windows_own_runs_with_the_same_maps(blocks_image):
    """The setting is what the runs' chunks are sized from: a budget smaller than one
    image sends one image per call; the maps do not change."""
    loose, runner, _drawings, events = opened(blocks_image, size=SIZE)
    loose.analysis.update(method="occlusion", window=12, stride=12)
    runner.run_until_idle()
    tight, runner2, _d, events2 = opened(blocks_image, size=SIZE)
    tight.model.set_memory("0.000001")  # about 1 KiB: one image at a time
    tight.analysis.update(method="occlusion", window=12, stride=12)
    runner2.run_until_idle()
    a, b = loose.store.method_for(), tight.store.method_for()
    assert a is not None and b is not None and not events["failed"] + events2["failed"]
    assert a.forward == b.forward
    for c in a.maps:
        assert (a.maps[c] == b.maps[c]).all()


# ----------------------------------------------------------------------------- the cost gate
def test_the_cost_gate_states_the_memory_a_run_takes_next_to_its_time(blocks_image):
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    doc.analysis.auto_run_seconds = 0.0  # everything is costly
    doc.analysis.update(method="ig", n_steps=6)
    session = doc.store.session
    facts = session.memory.memory_facts()
    per, _measured = facts.gradient_or_model()
    assert per is not None  # modelled from the prediction's layer outputs
    at_once = min(6, session.budget.images(per, facts.gradient_batch))
    status = present(doc, drawings).explain.status
    assert re.search(r"about [\d.]+ (s|min|h) and (about|roughly) ", status), status
    assert f"({at_once} image{'s' if at_once > 1 else ''} at a time within the " in status
    assert status.endswith("budget) here. Press Compute to run it.")
    # a smaller budget: fewer steps at a time, and the gate says so at once
    doc.model.set_memory(f"{1.5 * per / GIB:.9f}")
    status = present(doc, drawings).explain.status
    assert "(1 image at a time within the" in status
    # the Evaluate panel's estimate too
    doc.evaluation.methods = ("ablation", "gradcam")
    cost = present(doc, drawings).evaluation.cost_text
    assert cost.startswith("at most") and "at a time within the" in cost
    assert re.search(r"at most about [\d.]+ (s|min|h) and (about|roughly) ", cost), cost


# ----------------------------------------------------------------------------- quick preview
def test_the_evaluate_panel_offers_a_quick_preview_that_says_what_it_skips(blocks_image):
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    doc.evaluation.methods = ("ablation", "gradcam")
    full = present(doc, drawings).evaluation
    assert not full.quick and "Quick preview" not in full.cost_text
    doc.evaluation.update_settings(seed=3)
    doc.evaluation.set_quick(True)
    assert doc.evaluation.settings == replace(QUICK, seed=3)  # the seed is kept
    quick = present(doc, drawings).evaluation
    assert quick.quick and quick.cost_text.startswith(QUICK_DESCRIPTION)
    for skipped in ("10 pixel steps (not 20)", "3 chance runs (not 10)",
                    "no randomisation check", "no sensitivity"):
        assert skipped in quick.cost_text
    # fewer images than the full evaluation, and it runs as announced
    images = [int(re.search(r"[Aa]t most (\d+) images", v.cost_text).group(1))
              for v in (full, quick)]
    assert images[1] < images[0]
    doc.evaluation.run()
    runner.run_until_idle()
    result = doc.evaluation.result()
    assert result is not None and not events["failed"]
    assert "mprt" not in result.images or result.images["mprt"] == 0
    assert sum(result.images.values()) <= images[1]
    # a setting changed by hand: no longer the quick preview, and the text says what differs
    doc.evaluation.update_settings(pixel_steps=12)
    view = present(doc, drawings).evaluation
    assert not view.quick and view.cost_text.startswith(
        "Not the full evaluation: 12 pixel steps (not 20)")
    doc.evaluation.set_quick(False)
    assert doc.evaluation.settings == EvaluationSettings(seed=3)


# ----------------------------------------------------------------------------- one wording
@pytest.mark.parametrize(("method", "options"), [("ig", {"n_steps": 6}),
                                                 ("occlusion", {"window": 12, "stride": 12}),
                                                 ("shapley", {"shapley_mode": "exact"})])
def test_a_runs_images_are_described_the_same_way_before_during_and_after(
        blocks_image, method, options):
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    doc.analysis.auto_run_seconds = 0.0  # the cost gate shows the estimate
    doc.analysis.update(method=method, **options)
    before = present(doc, drawings).explain.status
    found = re.search(r"needs (\d+) images through the model", before)
    assert found, before
    total = int(found.group(1))
    estimate = doc.estimate()
    assert total == estimate.cost.forward + estimate.cost.backward
    doc.compute()
    runner.run_until_idle()
    during = [m for channel, _d, _t, m in runner.progress if channel == "method"]
    counted = [re.search(r"(\d+) of (\d+) images through the model", m) for m in during]
    assert during and all(counted), during
    assert {int(c.group(2)) for c in counted} == {total}
    assert int(counted[-1].group(1)) == total  # the bar reaches its end
    after = present(doc, drawings).explain.status
    assert re.search(rf": {total} images? through the model\b", after), after
    maps = doc.store.method_for()
    assert maps.forward + maps.backward == total  # and that is what ran


def test_time_estimates_use_the_steady_per_image_time_once_a_chunked_run_measured_it(
        blocks_image):
    """The prediction's pass pays for the model's first call on the image (an
    over-estimate, issue 26 item 8): once a chunked run has timed its images, the
    estimates take their median instead."""
    doc, runner, drawings, events = opened(blocks_image, size=SIZE)
    pred, session = doc.store.prediction, doc.store.session
    doc.analysis.auto_run_seconds = 0.0
    doc.analysis.update(method="ig", n_steps=4)
    assert session.memory.seconds_per_image() is None
    before = doc.estimate()
    assert before.seconds == pytest.approx(before.cost.seconds(pred.seconds))
    doc.analysis.update(method="occlusion", window=12, stride=12)
    doc.compute()
    runner.run_until_idle()
    steady = session.memory.seconds_per_image()
    assert steady is not None and steady > 0
    doc.analysis.update(method="ig", n_steps=4)
    after = doc.estimate()
    assert after.seconds == pytest.approx(after.cost.seconds(steady))
    doc.evaluation.methods = ("gradcam",)
    cost, seconds = doc.evaluation.estimate()
    assert seconds == pytest.approx(cost.seconds(steady))
