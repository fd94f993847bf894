"""What has been computed for the current prediction, by typed key.

The store holds one prediction (its session, its key) and the results computed from it.
A result whose key names another prediction is dropped on arrival, a new prediction
empties the store, and each kind keeps at most :data:`MAX_PER_KIND` results (the oldest
goes): every eviction happens here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .keys import (
    AblatedKey,
    EvaluationKey,
    GradCamKey,
    MethodKey,
    PredictKey,
    ResultKey,
    SweepKey,
)

if TYPE_CHECKING:  # the engine imports torch; the store only holds its results
    from ...engine.evaluation import Evaluation
    from ...engine.layers import LayerInfo
    from ...engine.results import AblationSweep, GradCamResult, MethodMaps, Prediction
    from ...engine.session import Session

MAX_PER_KIND = 24
K = TypeVar("K")
V = TypeVar("V")


def _put(cache: dict[K, V], key: K, value: V) -> None:
    cache.pop(key, None)
    cache[key] = value
    while len(cache) > MAX_PER_KIND:
        cache.pop(next(iter(cache)))


class ResultStore:
    """The current prediction and everything computed from it."""

    def __init__(self) -> None:
        self.predict_key: PredictKey | None = None
        self.session: Session | None = None
        self.prediction: Prediction | None = None
        self._gradcams: dict[GradCamKey, GradCamResult] = {}
        self._sweeps: dict[SweepKey, AblationSweep] = {}
        self._ablated: dict[AblatedKey, np.ndarray] = {}
        self._methods: dict[MethodKey, MethodMaps] = {}
        self._evaluations: dict[EvaluationKey, Evaluation] = {}
        self._audits: dict[PredictKey, list[LayerInfo]] = {}
        self.generation = 0  # changes whenever a result arrives or is dropped

    # -- the prediction ------------------------------------------------------------------
    def set_prediction(self, key: PredictKey, session: Session, prediction: Prediction) -> None:
        self.clear()
        self.predict_key, self.session, self.prediction = key, session, prediction

    def clear(self) -> None:
        """Forget the prediction and every result (a new image, model or size)."""
        self.predict_key = self.session = self.prediction = None
        self._gradcams.clear()
        self._sweeps.clear()
        self._ablated.clear()
        self._methods.clear()
        self._evaluations.clear()
        self.generation += 1

    # -- results -------------------------------------------------------------------------
    def put(self, key: ResultKey, value: Any) -> bool:
        """Keep ``value`` for ``key``; False (dropped) if it belongs to another prediction."""
        if key.predict != self.predict_key or self.predict_key is None:
            return False
        if isinstance(key, GradCamKey):
            _put(self._gradcams, key, value)
        elif isinstance(key, SweepKey):
            _put(self._sweeps, key, value)
        elif isinstance(key, MethodKey):
            _put(self._methods, key, value)
        elif isinstance(key, EvaluationKey):
            _put(self._evaluations, key, value)
        else:
            _put(self._ablated, key, value)
        self.generation += 1
        return True

    def put_audit(self, key: PredictKey, infos: list[LayerInfo]) -> None:
        _put(self._audits, key, infos)

    def audit(self, key: PredictKey | None) -> list[LayerInfo] | None:
        return self._audits.get(key) if key is not None else None

    def gradcam(self, key: GradCamKey) -> GradCamResult | None:
        return self._gradcams.get(key)

    def sweep(self, key: SweepKey) -> AblationSweep | None:
        return self._sweeps.get(key)

    def method(self, key: MethodKey) -> MethodMaps | None:
        return self._methods.get(key)

    def evaluation(self, key: EvaluationKey) -> Evaluation | None:
        return self._evaluations.get(key)

    def method_results(self) -> list[tuple[MethodKey, MethodMaps]]:
        """Every other method's maps held, oldest first."""
        return list(self._methods.items())

    def ablated(self, key: AblatedKey) -> np.ndarray | None:
        return self._ablated.get(key)

    def has(self, key: ResultKey) -> bool:
        if isinstance(key, GradCamKey):
            return key in self._gradcams
        if isinstance(key, SweepKey):
            return key in self._sweeps
        if isinstance(key, MethodKey):
            return key in self._methods
        if isinstance(key, EvaluationKey):
            return key in self._evaluations
        return key in self._ablated

    def gradcam_keys(self) -> list[GradCamKey]:
        """The Grad-CAM results held, oldest first."""
        return list(self._gradcams)
