"""What has been computed for the current prediction, by typed key.

The store holds one prediction (its session, its key) and the results computed from it.
A result whose key names another prediction is dropped on arrival, a new prediction
empties it, and each kind keeps at most :data:`MAX_PER_KIND` results (the oldest goes):
every eviction happens here. It is also the narrow view of the results that helpers
get: the prediction, the lookups for the user's analysis choice (``current``), the
segment counts and the class colours, each computed once per prediction. ``changed``
says which kind of result arrived (``results.gradcam``, ``results.prediction``...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .choices import AnalysisChoice
from .events import Change, Event
from .keys import (
    AblatedKey,
    EvaluationKey,
    GradCamKey,
    MethodKey,
    PredictKey,
    ResultKey,
    SweepKey,
)
from .results import kind_of, method_key, result_key

if TYPE_CHECKING:  # the engine imports torch; the store only holds its results
    from ...engine.evaluation import Evaluation
    from ...engine.layers import LayerInfo
    from ...engine.results import AblationSweep, GradCamResult, MethodMaps, Prediction
    from ...engine.session import Session

MAX_PER_KIND = 24
K = TypeVar("K")
V = TypeVar("V")
_KINDS: dict[type, str] = {GradCamKey: "gradcam", SweepKey: "sweep", MethodKey: "method",
                           EvaluationKey: "evaluation", AblatedKey: "ablated"}


def _put(cache: dict[K, V], key: K, value: V) -> None:
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > MAX_PER_KIND:
        cache.pop(next(iter(cache)))


class ResultStore:
    """The current prediction and everything computed from it."""

    def __init__(self, current: Callable[[], AnalysisChoice] = AnalysisChoice) -> None:
        self.current = current  # the user's analysis choice: what the lookups answer for
        self.predict_key: PredictKey | None = None
        self.session: Session | None = None
        self.prediction: Prediction | None = None
        self._results: dict[str, dict[Any, Any]] = {kind: {} for kind in _KINDS.values()}
        self._audits: dict[PredictKey, list[LayerInfo]] = {}
        self._segment_counts: dict[str, int] = {}
        self._colors: tuple[Prediction, np.ndarray] | None = None
        self.changed: Event[Change] = Event()

    # -- the prediction ------------------------------------------------------------------
    def set_prediction(self, key: PredictKey, session: Session, prediction: Prediction) -> None:
        self.clear()
        self.predict_key, self.session, self.prediction = key, session, prediction
        self.changed.emit(Change("results", frozenset({"prediction"})))

    def clear(self) -> None:
        """Forget the prediction and every result (a new image, model or size)."""
        had = self.predict_key is not None or any(self._results.values())
        self.predict_key = self.session = self.prediction = None
        for cache in self._results.values():
            cache.clear()
        self._segment_counts.clear()
        if had:
            self.changed.emit(Change("results", frozenset({"prediction", *_KINDS.values()})))

    # -- results -------------------------------------------------------------------------
    def put(self, key: ResultKey, value: Any) -> bool:
        """Keep ``value`` for ``key``; False (dropped) if it belongs to another prediction."""
        if key.predict != self.predict_key or self.predict_key is None:
            return False
        kind = _KINDS[type(key)]
        _put(self._results[kind], key, value)
        self.changed.emit(Change("results", frozenset({kind})))
        return True

    def get(self, key: ResultKey) -> Any:
        return self._results[_KINDS[type(key)]].get(key)

    def has(self, key: ResultKey) -> bool:
        return key in self._results[_KINDS[type(key)]]

    def put_audit(self, key: PredictKey, infos: list[LayerInfo]) -> None:
        _put(self._audits, key, infos)
        self.changed.emit(Change("results", frozenset({"audit"})))

    def audit(self, key: PredictKey | None) -> list[LayerInfo] | None:
        return self._audits.get(key) if key is not None else None

    def gradcam(self, key: GradCamKey) -> GradCamResult | None:
        result: GradCamResult | None = self.get(key)
        return result

    def sweep(self, key: SweepKey) -> AblationSweep | None:
        result: AblationSweep | None = self.get(key)
        return result

    def method(self, key: MethodKey) -> MethodMaps | None:
        result: MethodMaps | None = self.get(key)
        return result

    def evaluation(self, key: EvaluationKey) -> Evaluation | None:
        result: Evaluation | None = self.get(key)
        return result

    def ablated(self, key: AblatedKey) -> np.ndarray | None:
        result: np.ndarray | None = self.get(key)
        return result

    def method_results(self) -> list[tuple[MethodKey, MethodMaps]]:
        """Every other method's maps held, oldest first."""
        return list(self._results["method"].items())

    def gradcam_keys(self) -> list[GradCamKey]:
        """The Grad-CAM results held, oldest first."""
        return list(self._results["gradcam"])

    # -- for the user's choices ------------------------------------------------------------
    def key_for(self, method: str | None = None,
                analysis: AnalysisChoice | None = None) -> ResultKey | None:
        """The key of the result ``method`` (default: the chosen one) reads."""
        if self.predict_key is None:
            return None
        return result_key(self.predict_key, analysis or self.current(), method,
                          self.gradcam_keys())

    def result_for(self, method: str | None = None,
                   analysis: AnalysisChoice | None = None) -> Any:
        key = self.key_for(method, analysis)
        return self.get(key) if key is not None else None

    def has_result(self, method: str | None = None,
                   analysis: AnalysisChoice | None = None) -> bool:
        """Whether the result ``method`` (default: the chosen one) needs is computed."""
        key = self.key_for(method, analysis)
        return key is not None and self.has(key)

    def gradcam_for(self, analysis: AnalysisChoice | None = None) -> GradCamResult | None:
        analysis = analysis or self.current()
        if kind_of(analysis.method).name != "gradcam":
            from dataclasses import replace

            analysis = replace(analysis, method="gradcam")
        result: GradCamResult | None = self.result_for(analysis=analysis)
        return result

    def method_for(self, analysis: AnalysisChoice | None = None) -> MethodMaps | None:
        """The chosen other method's maps, if computed (None for the other kinds)."""
        analysis = analysis or self.current()
        if self.predict_key is None or not kind_of(analysis.method).costed:
            return None
        return self.method(method_key(self.predict_key, analysis))

    def sweep_for(self, segments: str, baseline: str,
                  aggregation: str = "argmax") -> AblationSweep | None:
        """The ablation sweep computed for these choices, if any."""
        if self.predict_key is None:
            return None
        return self.sweep(SweepKey(self.predict_key, segments, baseline, aggregation))

    def segment_count(self, kind: str) -> int | None:
        """How many segments of ``kind`` the prediction has (computed once per kind)."""
        pred = self.prediction
        if pred is None:
            return None
        if kind == "class" and not pred.multilabel:
            return len(pred.present_classes)
        if kind not in self._segment_counts:  # a multi-label model's: its label sets
            self._segment_counts[kind] = pred.segments(kind).count
        return self._segment_counts[kind]

    def class_colors(self) -> np.ndarray:
        """The model's class colours (C x 3 uint8: its palette, else VOC's), the one place
        every view takes them from."""
        prediction = self.prediction
        if prediction is None:
            from ...render import class_colors

            return class_colors(21)
        if self._colors is None or self._colors[0] is not prediction:
            self._colors = (prediction, prediction.colors)  # made once per prediction
        return self._colors[1]
