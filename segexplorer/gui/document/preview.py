"""Progressive answers: on a slow device, a quick look before the full-size result.

When the model runs on the CPU (or MPS) and the working size is above
:data:`PREVIEW_SIZE`, the predict job first analyses the image at ``PREVIEW_SIZE``
(one forward pass serves the prediction and Grad-CAM for every present class), hands
that over as a partial answer, then runs the full-size prediction as usual. Both happen
in the one "predict" job, so cancelling or replacing it (a new image, model or size)
drops both, and the model lock is taken once.

The preview is display only: it is drawn (nearest-upscaled to the working size) while
the document has no full-size prediction, and is dropped the moment the full result
arrives (or if it arrives after it). The sweep, ablation clicks, hover scores and
exports only ever see the full-size session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...engine.methods import get_method
from ...render import hide_target, upscale_nearest
from .choices import AnalysisChoice, default_target
from .events import Change, Event
from .keys import PredictKey
from .labels import segmentation_drawing
from .results import GRADCAM_PASS, kind_of
from .runner import JobContext

if TYPE_CHECKING:
    from PIL.Image import Image

    from ...engine.budget import MemoryBudget
    from ...engine.models import LoadedModel
    from ...engine.results import GradCamResult, Prediction

PREVIEW_SIZE = 320
SLOW_DEVICE_TYPES = ("cpu", "mps")


def wants_preview(model: Any, size: int) -> bool:
    """Whether a model on its device at working ``size`` is worth a preview first."""
    device = getattr(model, "device", None)
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    return size > PREVIEW_SIZE and kind in SLOW_DEVICE_TYPES


def _analysis_key(choice: AnalysisChoice) -> tuple[str, str, str]:
    return choice.layer or "", choice.aggregation, choice.upsample


def compute_preview(model: LoadedModel, pil: Image, choice: AnalysisChoice,
                    state: JobContext | None = None, budget: MemoryBudget | None = None
                    ) -> tuple[Prediction, GradCamResult | None]:
    """(prediction, Grad-CAM or None) of ``pil`` at ``PREVIEW_SIZE``: one forward pass."""
    from ...engine.aggregation import Aggregation
    from ...engine.errors import Cancelled
    from ...engine.image import preprocess
    from ...engine.session import Session

    session = Session(model, preprocess(pil, PREVIEW_SIZE), budget=budget)
    gradcam = None
    try:  # Grad-CAM's forward pass also gives the prediction
        gradcam = session.gradcam(None, layer=choice.layer or None,
                                  aggregation=Aggregation(choice.aggregation),
                                  upsample=choice.upsample, state=state)
    except Cancelled:
        raise
    except Exception:  # noqa: BLE001 - a preview is best effort; the full run reports errors
        gradcam = None
    return session.predict(state), gradcam


@dataclass(frozen=True)
class PreviewResult:
    predict_key: PredictKey  # the full-size prediction this stands in for
    full_size: int
    analysis: tuple[str, str, str]  # (layer, aggregation, upsample) Grad-CAM was asked with
    prediction: Prediction
    gradcam: GradCamResult | None

    @property
    def note(self) -> str:
        return (f"Preview at {PREVIEW_SIZE} px; the full {self.full_size} px result is "
                "on its way")


@dataclass(frozen=True)
class PreviewAttribution:
    attr: np.ndarray
    caption: str
    key: tuple[object, ...]
    target: int | None


class Preview:
    """The preview the document may show; the predict job hands it over."""

    def __init__(self) -> None:
        self._expected: tuple[int, PredictKey] | None = None  # (request id, predict key)
        self.result: PreviewResult | None = None
        self.shown_count = 0  # previews accepted so far
        self._segmap: tuple[tuple[int, int], np.ndarray] | None = None
        self.changed: Event[Change] = Event()  # ('preview', {'result'})

    # -- the job side ----------------------------------------------------------------------
    @staticmethod
    def wrap(full_job: Callable[[JobContext], object], model: LoadedModel, pil: Image,
             choice: AnalysisChoice, key: PredictKey, full_size: int,
             budget: MemoryBudget | None = None) -> Callable[[JobContext], object]:
        """A predict job that first computes and hands over the preview, then ``full_job``."""
        analysis = _analysis_key(choice)

        def job(state: JobContext) -> object:
            prediction, gradcam = compute_preview(model, pil, choice, state, budget)
            state.partial(PreviewResult(key, full_size, analysis, prediction, gradcam))
            return full_job(state)

        return job

    def expect(self, request_id: int | None, key: PredictKey) -> None:
        """The predict request whose preview may be shown (any other is dropped)."""
        self._expected = (request_id, key) if request_id is not None else None

    def accept(self, request_id: int | None, result: PreviewResult) -> bool:
        """A preview arrived: keep it if it is the expected one (False: dropped)."""
        if request_id is None or self._expected != (request_id, result.predict_key):
            return False  # stale, or the full result is already here
        self._expected = None
        self.result = result
        self._segmap = None
        self.shown_count += 1
        self.changed.emit(Change("preview", frozenset({"result"})))
        return True

    def clear(self) -> PreviewResult | None:
        """Forget the preview (and any still on its way); the one that was shown, if any."""
        had = self.result
        self._expected = None
        self.result = None
        self._segmap = None
        if had is not None:
            self.changed.emit(Change("preview", frozenset({"result"})))
        return had

    # -- the drawing side --------------------------------------------------------------------
    def showing(self, has_prediction: bool, working_size: int | None) -> bool:
        """Whether the preview is what the document draws (no full prediction yet)."""
        return (self.result is not None and not has_prediction and working_size is not None
                and self.result.full_size == working_size)

    def segmap(self, shape: tuple[int, int]) -> np.ndarray:
        """The preview's class colours, upscaled to the working ``shape``."""
        assert self.result is not None
        if self._segmap is None or self._segmap[0] != shape:
            prediction = self.result.prediction
            colours = segmentation_drawing(prediction, prediction.colors)
            self._segmap = (shape, upscale_nearest(colours, shape))
        return self._segmap[1]

    def target(self, current: int | None) -> int | None:
        assert self.result is not None
        prediction = self.result.prediction
        present = prediction.present_classes
        if current in present:
            return current
        return default_target(present, background=not prediction.multilabel)

    def attribution(self, choice: AnalysisChoice, current_target: int | None, hide: bool,
                    shape: tuple[int, int]) -> PreviewAttribution | None:
        """The preview's map at ``shape`` with its caption and a drawing-cache key."""
        result = self.result
        if result is None:
            return None
        gradcam = result.gradcam
        if (gradcam is None or kind_of(choice.method) is not GRADCAM_PASS
                or _analysis_key(choice) != result.analysis):
            return None
        pred = result.prediction
        target = self.target(current_target)
        if not get_method(choice.method).per_class:  # the layer's activation
            attr, what = gradcam.activation_upsampled, "Mean activation"
        elif target is not None and target in gradcam.upsampled:
            attr, what = gradcam.upsampled[target], f"Grad-CAM of '{pred.categories[target]}'"
        else:
            return None
        hide = hide and target is not None
        if hide and target is not None:
            attr = hide_target(attr, pred.mask(target))
        caption = f"{what} at {gradcam.layer}"
        key = ("preview", result.predict_key, result.analysis, choice.method, target, hide)
        return PreviewAttribution(upscale_nearest(attr, shape), caption, key, target)
