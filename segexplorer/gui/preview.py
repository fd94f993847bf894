"""Progressive answers: on a slow device, a quick look before the full-size result.

When the model runs on the CPU (or MPS) and the working size is above
:data:`PREVIEW_SIZE`, the predict job first analyses the image at ``PREVIEW_SIZE``
(one forward pass serves the prediction and Grad-CAM for every present class), hands
that to the window, then runs the full-size prediction as usual. Both happen in the
one "predict" job, so cancelling or replacing it (a new image, model or size) drops
both, and the model lock is taken once.

The preview is display only: it is drawn (nearest-upscaled to the working size) while
the window has no full-size prediction, and is dropped the moment the full result
arrives (or if it arrives after it). The sweep, ablation clicks, hover scores and
exports only ever see the full-size session, which the window keeps apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QStatusBar

from ..render import decode_segmap
from .options import ACTIVATION, GRADCAM, AnalysisChoice

PREVIEW_SIZE = 320
SLOW_DEVICE_TYPES = ("cpu", "mps")
FULL_SIZE_MESSAGE_MS = 5000


def wants_preview(model, size: int) -> bool:
    """Whether a model on its device at working ``size`` is worth a preview first."""
    device = getattr(model, "device", None)
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    return size > PREVIEW_SIZE and kind in SLOW_DEVICE_TYPES


def compute_preview(model, pil, choice: AnalysisChoice, state=None):
    """(prediction, Grad-CAM or None) of ``pil`` at ``PREVIEW_SIZE``: one forward pass."""
    from ..engine.aggregation import Aggregation
    from ..engine.errors import Cancelled
    from ..engine.image import preprocess
    from ..engine.session import Session

    session = Session(model, preprocess(pil, PREVIEW_SIZE))
    gradcam = None
    try:  # Grad-CAM's forward pass also gives the prediction
        gradcam = session.gradcam(None, choice.layer or None, Aggregation(choice.aggregation),
                                  choice.upsample, state)
    except Cancelled:
        raise
    except Exception:  # noqa: BLE001 - a preview is best effort; the full run reports errors
        gradcam = None
    return session.predict(state), gradcam


def upscale(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an H x W (x C) array to ``shape`` (H, W)."""
    h, w = array.shape[:2]
    rows = (np.arange(shape[0]) * h) // shape[0]
    cols = (np.arange(shape[1]) * w) // shape[1]
    return np.ascontiguousarray(array[rows[:, None], cols])


@dataclass(frozen=True)
class PreviewResult:
    predict_key: tuple  # the full-size prediction this stands in for
    full_size: int
    analysis: tuple  # (layer, aggregation, upsample) the Grad-CAM was asked with
    prediction: object  # engine Prediction at PREVIEW_SIZE
    gradcam: object | None  # engine GradCamResult at PREVIEW_SIZE

    @property
    def note(self) -> str:
        return (f"Preview at {PREVIEW_SIZE} px; the full {self.full_size} px result is "
                "on its way")


def _analysis_key(choice: AnalysisChoice) -> tuple:
    return choice.layer or "", choice.aggregation, choice.upsample


class PreviewController(QObject):
    """Holds the preview the window may show; the predict job reports to it."""

    #: (WorkerState, PreviewResult), emitted from the worker thread
    _ready = Signal(object)
    #: the preview appeared or went away
    changed = Signal()

    def __init__(self, status_bar: QStatusBar, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._status = status_bar
        self._expected: tuple[int, tuple] | None = None  # (request id, predict key)
        self.result: PreviewResult | None = None
        self.shown_count = 0  # previews accepted so far (tests use it)
        self._segmap: tuple[tuple, np.ndarray] | None = None
        self._ready.connect(self._on_ready)

    # -- the job side -------------------------------------------------------------------
    def wrap(self, full_job: Callable, model, pil, choice: AnalysisChoice, key: tuple,
             full_size: int) -> Callable:
        """A predict job that first computes and reports the preview, then ``full_job``."""
        analysis = _analysis_key(choice)

        def job(state):
            prediction, gradcam = compute_preview(model, pil, choice, state)
            if not state.cancel_requested:
                self._ready.emit((state, PreviewResult(key, full_size, analysis, prediction,
                                                       gradcam)))
            return full_job(state)

        return job

    def expect(self, request_id: int, key: tuple) -> None:
        """The predict request whose preview may be shown (any other is dropped)."""
        self._expected = (request_id, key)

    @Slot(object)
    def _on_ready(self, payload) -> None:
        state, result = payload
        if state.cancel_requested or self._expected != (state.request_id, result.predict_key):
            return  # stale, cancelled, or the full result is already here
        self._expected = None
        self.result = result
        self._segmap = None
        self.shown_count += 1
        self._status.showMessage(result.note + ".")
        self.changed.emit()

    def clear(self, full_size_arrived: bool = False) -> None:
        """Forget the preview (and any that is still on its way)."""
        had = self.result
        self._expected = None
        self.result = None
        self._segmap = None
        if had is not None:
            if self._status.currentMessage() == had.note + ".":
                self._status.clearMessage()
            if full_size_arrived:
                self._status.showMessage(f"Showing the full-size result ({had.full_size} px).",
                                         FULL_SIZE_MESSAGE_MS)

    # -- the window side ------------------------------------------------------------------
    def showing(self, prediction, prepared) -> bool:
        """Whether the preview is what the window draws (no full prediction yet)."""
        return (self.result is not None and prediction is None and prepared is not None
                and self.result.full_size == prepared.size)

    def segmap(self, shape: tuple[int, int]) -> np.ndarray:
        """The preview's class colours, upscaled to the working ``shape``."""
        if self._segmap is None or self._segmap[0] != shape:
            colours = decode_segmap(self.result.prediction.class_map,
                                    self.result.prediction.colors)
            self._segmap = (shape, upscale(colours, shape))
        return self._segmap[1]

    def target(self, current: int | None) -> int | None:
        present = self.result.prediction.present_classes
        if current in present:
            return current
        foreground = [c for c in present if c != 0]
        return (foreground or present or [None])[0]

    def attribution(self, choice: AnalysisChoice, current_target: int | None, hide: bool,
                    shape: tuple[int, int]):
        """(map at ``shape``, caption, render-cache key) like the window's, or None."""
        result = self.result
        gradcam = result.gradcam
        if (gradcam is None or choice.method not in (GRADCAM, ACTIVATION)
                or _analysis_key(choice) != result.analysis):
            return None
        pred = result.prediction
        target = self.target(current_target)
        if choice.method == ACTIVATION:
            attr, what = gradcam.activation_upsampled, "Mean activation"
        elif target in gradcam.upsampled:
            attr, what = gradcam.upsampled[target], f"Grad-CAM of '{pred.categories[target]}'"
        else:
            return None
        class_map = pred.class_map
        hide = hide and target is not None
        if hide:
            from ..engine.session import hide_target

            attr = hide_target(attr, class_map, target)
        caption = f"{what} at {gradcam.layer}"
        key = ("preview", result.predict_key, result.analysis, choice.method, target, hide)
        return upscale(attr, shape), caption, key
