"""Helpers shared by the GUI tests: waiting for the window, reading what it shows.

The models are the shared tiny ones (``tests/tiny_models.py``, registered by the root
conftest).
"""

from __future__ import annotations

import numpy as np
from tiny_models import BROKEN, SLOW, TINY, SlowDown

__all__ = ["BROKEN", "SIZE", "SLOW", "TINY", "SlowDown", "choose", "enter_layer", "overlay",
           "shown_model", "wait_for_prediction", "wait_idle"]

SIZE = 64


def wait_for_prediction(qtbot, window, timeout=20000):
    qtbot.waitUntil(lambda: window.document.store.prediction is not None, timeout=timeout)


def wait_idle(qtbot, window, timeout=20000):
    qtbot.waitUntil(lambda: not window.runner.is_busy(), timeout=timeout)


def overlay(window) -> np.ndarray:
    """What the canvas's overlay layer shows (H x W x 4)."""
    shown = window.canvas.overlay_rgba()
    assert shown is not None, "the overlay is hidden"
    return shown


def choose(combo, value) -> None:
    """Pick the item whose value is ``value``, as a user picks it from the list."""
    index = combo.findData(value)
    assert index >= 0, f"{value!r} is not offered"
    combo.setCurrentIndex(index)


def enter_layer(panel, path: str) -> None:
    """Type a layer path into the explanation panel's layer field and press Enter."""
    panel.layer.setText(path)
    panel.layer.returnPressed.emit()


def shown_model(panel):
    """The model choice the Model panel's widgets show."""
    from segexplorer.gui.document.choices import ModelChoice

    return ModelChoice(str(panel.architecture.currentData()), str(panel.weights.currentData()),
                       str(panel.device.currentData()), panel.size_spin.value(),
                       "bf16" if panel.fast.isChecked() else "fp32")
