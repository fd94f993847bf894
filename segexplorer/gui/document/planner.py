"""What must be computed: a pure function from the document's situation to job requests.

The document describes itself as a :class:`Situation` (plain values, no live objects) and
:func:`plan` answers with the requests, in order, that the current choices need and the
store does not hold. The document submits them; a request already on its way, or one that
failed or was cancelled with the same key, is skipped by the job book, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .choices import ABLATED, ABLATION, ACTIVATION, LAYER_METHODS, AnalysisChoice, ModelChoice
from .keys import AblatedKey, GradCamKey, ImageKey, ModelKey, PredictKey, ResultKey, SweepKey


@dataclass(frozen=True)
class Situation:
    """Everything :func:`plan` looks at."""

    engine_ready: bool
    model_choice: ModelChoice
    analysis: AnalysisChoice
    canvas_layer: str
    target: int | None
    ablate_mode: bool
    loaded_model: ModelKey | None
    source: int | None  # the opened image (its pixels are loaded), if any
    loaded_image: ImageKey | None
    predict_key: PredictKey | None  # the stored prediction's
    stored: frozenset[ResultKey] = frozenset()


@dataclass(frozen=True)
class LoadEngine:
    """Import torch and the engine (once)."""


@dataclass(frozen=True)
class LoadModel:
    key: ModelKey


@dataclass(frozen=True)
class Resize:
    """Prepare the opened image at another working size."""

    key: ImageKey


@dataclass(frozen=True)
class Predict:
    key: PredictKey
    gradcam: GradCamKey | None  # the same forward pass also gives this Grad-CAM


@dataclass(frozen=True)
class ComputeGradCam:
    key: GradCamKey


@dataclass(frozen=True)
class ComputeSweep:
    key: SweepKey


@dataclass(frozen=True)
class ComputeAblatedInput:
    key: AblatedKey


Request = (LoadEngine | LoadModel | Resize | Predict | ComputeGradCam | ComputeSweep
           | ComputeAblatedInput)


def gradcam_key(predict: PredictKey, analysis: AnalysisChoice) -> GradCamKey:
    return GradCamKey(predict, analysis.layer or "", analysis.aggregation, analysis.upsample)


def layer_key(predict: PredictKey, analysis: AnalysisChoice,
              stored: Iterable[object] = ()) -> GradCamKey:
    """The Grad-CAM pass the chosen method reads. The layer's activation does not depend
    on Grad-CAM's upsampling or class score: any pass at that layer serves it."""
    exact = gradcam_key(predict, analysis)
    if analysis.method != ACTIVATION:
        return exact
    stored = list(stored)
    if exact in stored:
        return exact
    return next((k for k in stored if isinstance(k, GradCamKey) and k.predict == predict
                 and k.layer == exact.layer), exact)


def sweep_key(predict: PredictKey, analysis: AnalysisChoice,
              aggregation: str | None = None) -> SweepKey:
    return SweepKey(predict, analysis.segments, analysis.baseline,
                    aggregation or analysis.aggregation)


def ablated_key(predict: PredictKey, analysis: AnalysisChoice, target: int) -> AblatedKey:
    return AblatedKey(predict, analysis.segments, analysis.baseline, target)


def wanted_prediction(s: Situation) -> PredictKey | None:
    """The prediction the choices ask for, once its model and image are both loaded."""
    if s.loaded_model is None or s.loaded_image is None or s.source is None:
        return None
    choice = s.model_choice
    want = PredictKey(s.loaded_model, s.loaded_image, choice.precision)
    if want != PredictKey(choice.key, ImageKey(s.source, choice.size), choice.precision):
        return None  # the model or the image for these choices is still on its way
    return want


def plan(s: Situation) -> tuple[Request, ...]:
    """The jobs the current choices need, in the order they should start."""
    if not s.engine_ready:
        return (LoadEngine(),)  # model work waits for torch
    requests: list[Request] = []
    choice = s.model_choice
    if choice.key != s.loaded_model:
        requests.append(LoadModel(choice.key))
    if s.source is not None:
        image = ImageKey(s.source, choice.size)
        if image != s.loaded_image:
            requests.append(Resize(image))
    want = wanted_prediction(s)
    if want is not None and s.predict_key != want:
        with_gradcam = (gradcam_key(want, s.analysis) if s.analysis.method in LAYER_METHODS
                        else None)
        requests.append(Predict(want, with_gradcam))
    predict = s.predict_key
    if predict is None:
        return tuple(requests)
    analysis = s.analysis
    if analysis.method in LAYER_METHODS:
        gkey = layer_key(predict, analysis, s.stored)
        if gkey not in s.stored:
            requests.append(ComputeGradCam(gkey))
    elif analysis.method == ABLATION:
        skey = sweep_key(predict, analysis)
        if skey not in s.stored:
            requests.append(ComputeSweep(skey))
    if s.canvas_layer == ABLATED and s.target is not None and not s.ablate_mode:
        akey = ablated_key(predict, analysis, s.target)
        if akey not in s.stored:
            requests.append(ComputeAblatedInput(akey))
    return tuple(requests)
