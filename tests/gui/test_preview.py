"""Progressive answers: a preview at PREVIEW_SIZE first, then the full-size result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gui_support import overlay, wait_idle
from PIL import Image
from tiny_models import PIXEL_SLOW, SlowDown

from segexplorer.gui.document.preview import PREVIEW_SIZE, wants_preview
from segexplorer.render import upscale_nearest

FULL = 480  # working size: above PREVIEW_SIZE, small enough for two CPU cores


@pytest.fixture(autouse=True)
def slow_forward():
    # 480 x 640 (the blocks image at 480): ~0.8 s a pass; the 320 preview ~0.35 s
    SlowDown.seconds_per_mpx = 2.6
    yield
    SlowDown.seconds_per_mpx = 0.0


def _caption(window) -> str:
    return window.colorbar.toolTip()


def _full_result_shown(window) -> bool:
    return window.document.store.prediction is not None and window.document.store.has_result()


def test_preview_first_then_full_size(qtbot, make_window, blocks_image):
    window = make_window(PIXEL_SLOW, size=FULL)
    window.document.image.open(blocks_image)
    qtbot.waitUntil(lambda: window.document.preview.result is not None, timeout=20000)

    assert window.document.store.prediction is None, "the preview must come before the full result"
    preview = window.document.preview.result
    full_shape = window.document.image.prepared.shape
    assert full_shape == (FULL, 640)
    small = preview.prediction.class_map.shape
    assert min(small) == PREVIEW_SIZE and small[0] < full_shape[0]
    # drawn over the full working-size canvas, with the preview caption
    assert overlay(window).shape[:2] == full_shape
    assert window.canvas.image_size() == (640, FULL)
    note = f"Preview at {PREVIEW_SIZE} px; the full {FULL} px result is on its way"
    assert _caption(window).startswith(note)
    assert note in window.statusBar().currentMessage()
    # display only: no hover scores, clicks or exports from the preview
    assert window.document.store.session is None
    assert "score" not in window.presenters.describe_pixel(10, 10)
    assert "attribution" not in window.presenters.describe_pixel(10, 10)
    assert not window.commands.export_view.isEnabled()
    assert not window.commands.export_figure.isEnabled()

    qtbot.waitUntil(lambda: _full_result_shown(window), timeout=30000)
    assert window.document.preview.result is None
    assert window.document.store.prediction.class_map.shape == full_shape
    assert window.document.store.session.image.shape == full_shape
    assert "attribution" in window.presenters.describe_pixel(10, 10)
    assert "Preview" not in _caption(window) and _caption(window)
    assert "Preview" not in window.statusBar().currentMessage()
    assert window.commands.export_view.isEnabled()
    assert window.document.preview.shown_count == 1
    wait_idle(qtbot, window)


def test_new_image_during_preview_leaves_no_stale_preview(qtbot, make_window, blocks_image,
                                                          tmp_path):
    other = tmp_path / "other.png"
    rgb = np.zeros((96, 128, 3), np.uint8)
    rgb[:, :64] = (200, 40, 40)
    Image.fromarray(rgb).save(other)
    window = make_window(PIXEL_SLOW, size=FULL)
    window.document.image.open(blocks_image)
    qtbot.waitUntil(lambda: window.document.preview.result is not None, timeout=20000)
    first_key = window.document.preview.result.predict_key

    window.document.image.open(other)
    qtbot.waitUntil(lambda: window.document.image.label.endswith("other.png"), timeout=20000)
    # the old image's preview went with it
    assert window.document.preview.result is None or (
        window.document.preview.result.predict_key.image == window.document.image.key)
    seen, stale = [], []

    def check() -> bool:
        result = window.document.preview.result
        if result is not None:
            seen.append(result.predict_key)
            if result.predict_key.image != window.document.image.key:
                stale.append(result.predict_key)
        return _full_result_shown(window)

    qtbot.waitUntil(check, timeout=30000)
    assert not stale, "a stale preview was shown"
    assert first_key not in seen
    assert window.document.store.predict_key.image == window.document.image.key
    assert window.document.preview.result is None
    wait_idle(qtbot, window)


def test_sweep_after_full_result_uses_full_size_segments(qtbot, make_window, blocks_image):
    window = make_window(PIXEL_SLOW, size=FULL)
    window.document.image.open(blocks_image)
    qtbot.waitUntil(lambda: window.document.preview.result is not None, timeout=20000)
    qtbot.waitUntil(lambda: _full_result_shown(window), timeout=30000)
    SlowDown.seconds_per_mpx = 0.0  # the sweep's many passes need not be slow
    window.document.ablation.precompute_sweep("class", "zero")
    qtbot.waitUntil(lambda: window.document.store.sweep_for("class", "zero") is not None, timeout=30000)
    sweep = window.document.store.sweep_for("class", "zero")
    assert sweep.segments.ids.shape == window.document.image.prepared.shape == (FULL, 640)
    assert sweep.after_maps is None or sweep.after_maps.shape[1:] == (FULL, 640)
    wait_idle(qtbot, window)


def test_no_preview_at_small_sizes(qtbot, make_window, blocks_image):
    window = make_window(PIXEL_SLOW, size=PREVIEW_SIZE)
    window.document.image.open(blocks_image)
    qtbot.waitUntil(lambda: _full_result_shown(window), timeout=30000)
    assert window.document.preview.shown_count == 0
    wait_idle(qtbot, window)


def test_wants_preview_only_on_slow_devices():
    class Fake:
        def __init__(self, device: str) -> None:
            self.device = torch.device(device)

    assert wants_preview(Fake("cpu"), 640)
    assert not wants_preview(Fake("cpu"), PREVIEW_SIZE)
    assert not wants_preview(Fake("cuda"), 640)
    assert wants_preview(Fake("mps"), 640)


def test_upscale_is_nearest():
    small = np.arange(6).reshape(2, 3)
    big = upscale_nearest(small, (4, 6))
    assert big.shape == (4, 6)
    assert (big[::2, ::2] == small).all()
