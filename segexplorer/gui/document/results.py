"""Where each method's maps come from, as a table: the planner, the store, the views and
the exports look a method up here instead of branching on its name.

Three kinds of result serve the registry's methods (``engine.methods``):

* the Grad-CAM pass (Grad-CAM and the layer's activation, ``GRADCAM_PASS_METHODS``): one
  forward pass gives both for every class, often the prediction's own pass;
* the ablation sweep (Feature ablation): every segment once, every class's score, which
  also answers ablate mode's single clicks;
* a method's maps (every other method): ``engine.attribution.compute`` for every class;
  their cost is shown first, and a costly one waits for Compute.

The functions below say which key identifies a result for the user's choices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...engine.methods import ABLATION, GRADCAM_PASS_METHODS, METHODS, get_method
from .choices import AnalysisChoice
from .keys import AblatedKey, GradCamKey, MethodKey, PredictKey, ResultKey, SweepKey
from .requests import ComputeGradCam, ComputeMethod, ComputeSweep, Planned


def gradcam_key(predict: PredictKey, analysis: AnalysisChoice) -> GradCamKey:
    return GradCamKey(predict, analysis.layer or "", analysis.aggregation, analysis.upsample)


def layer_key(predict: PredictKey, analysis: AnalysisChoice,
              stored: Iterable[object] = ()) -> GradCamKey:
    """The Grad-CAM pass the chosen method reads. The layer's activation does not depend
    on Grad-CAM's upsampling or class score: any pass at that layer serves it."""
    exact = gradcam_key(predict, analysis)
    if {"aggregation", "upsample"} & get_method(analysis.method).uses:
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


def method_key(predict: PredictKey, analysis: AnalysisChoice,
               method: str | None = None) -> MethodKey:
    name = method or analysis.method
    return MethodKey(predict, name, analysis.method_options().used_by(name))


def ablated_key(predict: PredictKey, analysis: AnalysisChoice, target: int) -> AblatedKey:
    return AblatedKey(predict, analysis.segments, analysis.baseline, target)


@dataclass(frozen=True)
class ResultKind:
    """One kind of result: its channel, whether its cost is shown first (a costly one
    waits for Compute), its key for the user's choices, and the request that computes it."""

    name: str
    channel: str
    costed: bool
    key: Callable[[PredictKey, AnalysisChoice, Iterable[object]], ResultKey]
    request: Callable[[Any], Planned]


def _sweep_key(predict: PredictKey, analysis: AnalysisChoice,
               _stored: Iterable[object] = ()) -> SweepKey:
    return sweep_key(predict, analysis)


def _method_key(predict: PredictKey, analysis: AnalysisChoice,
                _stored: Iterable[object] = ()) -> MethodKey:
    return method_key(predict, analysis)


GRADCAM_PASS = ResultKind("gradcam", "gradcam", False, layer_key, ComputeGradCam)
SWEEP = ResultKind("sweep", "sweep", False, _sweep_key, ComputeSweep)
MAPS = ResultKind("method", "method", True, _method_key, ComputeMethod)

#: each registered method's kind of result
RESULT_KINDS: dict[str, ResultKind] = {
    m: GRADCAM_PASS if m in GRADCAM_PASS_METHODS else SWEEP if m == ABLATION else MAPS
    for m in METHODS}
#: the methods with a job of their own (a MethodKey in the store)
OTHER_METHODS: tuple[str, ...] = tuple(m for m in METHODS if RESULT_KINDS[m] is MAPS)


def kind_of(method: str) -> ResultKind:
    return RESULT_KINDS[method]


def result_key(predict: PredictKey, analysis: AnalysisChoice, method: str | None = None,
               stored: Iterable[object] = ()) -> ResultKey:
    """The key of the result ``method`` (default: the chosen one) reads."""
    if method is not None and method != analysis.method:
        from dataclasses import replace

        analysis = replace(analysis, method=method)
    return RESULT_KINDS[analysis.method].key(predict, analysis, stored)
