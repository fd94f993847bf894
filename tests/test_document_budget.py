"""The window's memory budget and its cost gate, in the document (no Qt): the
Preferences' setting reaches every session the window makes, the status bar says the
budget beside the device, the cost gate states memory beside time, and a run's images
are described the same way before, during and after it (issue 22, issue 26 item 8)."""

from __future__ import annotations

import pytest
from test_document import opened, present

from segexplorer.engine.budget import ENV_VAR, GIB, MemoryBudget, format_bytes, resolve_budget
from segexplorer.engine.errors import UserError
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
