"""Edit > Preferences...: the memory budget, through the widgets (issue 22)."""

from __future__ import annotations

import pytest
from gui_support import wait_for_prediction, wait_idle
from PySide6.QtWidgets import QDialogButtonBox

from segexplorer.engine.budget import ENV_VAR, GIB
from segexplorer.gui.preferences import MEMORY_SETTING
from segexplorer.gui.settings import make_settings


@pytest.fixture(autouse=True)
def _no_budget_in_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def _ok(dialog):
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()


def _edit_menu_texts(window):
    edit = next(a for a in window.menuBar().actions() if a.text() == "&Edit")
    return [a.text() for a in edit.menu().actions()]


def test_the_memory_budget_is_set_in_preferences_shown_by_the_device_and_remembered(
        qtbot, make_window, blocks_image):
    window = make_window()
    assert "Pr&eferences..." in _edit_menu_texts(window)
    window.document.image.open(blocks_image)
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)
    device = window.status.device_label.text()
    assert "memory budget" in device and device.endswith("(half the free memory)")
    window.preferences.action.trigger()
    dialog = window.preferences.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.memory.text() == "auto" and dialog.current.text().startswith("Now: ")
    # a bad value: one line, the dialog stays, nothing changes
    dialog.memory.setText("lots")
    _ok(dialog)
    assert dialog.isVisible() and "\n" not in dialog.error.text()
    assert dialog.error.text().startswith("Memory budget 'lots' is not a number of GiB")
    assert window.document.model.memory_gib is None
    # a value: the session's chunks are sized under it, the status bar says so
    dialog.memory.setText("0.5")
    _ok(dialog)
    assert not dialog.isVisible()
    assert window.document.model.memory_gib == 0.5
    assert window.document.store.session.budget.limit == int(0.5 * GIB)
    qtbot.waitUntil(lambda: window.status.device_label.text().endswith(
        "memory budget 512 MiB (set in Preferences)"))
    assert str(make_settings().value(MEMORY_SETTING)) == "0.5"
    # the next window starts with it
    again = make_window()
    assert again.document.model.memory_gib == 0.5
    again.preferences.action.trigger()
    assert again.preferences.dialog.memory.text() == "0.5"
    again.preferences.dialog.memory.setText("auto")
    _ok(again.preferences.dialog)
    assert again.document.model.memory_gib is None
    assert str(make_settings().value(MEMORY_SETTING)) == "auto"
