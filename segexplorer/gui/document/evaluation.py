"""The Evaluate panel's state, without Qt: which methods to evaluate, how, which curve is
drawn, its cost before it runs, and the evaluation of the current prediction.

An evaluation never starts by itself (it sends hundreds of images through the model): the
panel shows its cost; Run asks for it (``wanted``), and the planner then asks for an
``Evaluate`` job (progress and Cancel as every job). Its result is kept in the store
under an :class:`EvaluationKey` (the methods, every method option and the evaluation's
settings), so coming back to the same choices shows it at once.
"""

from __future__ import annotations

from dataclasses import astuple, fields, replace
from typing import TYPE_CHECKING, Any

from ...engine.evaluation_plan import (
    QUICK,
    QUICK_DESCRIPTION,
    EvaluationCost,
    EvaluationSettings,
    evaluation_cost,
)
from ...engine.methods import DEFAULT_METHODS, METHODS, ImageFacts
from .estimates import image_seconds, memory_facts
from .events import Field, State
from .jobtable import Job, JobTable
from .keys import EvaluationKey
from .requests import Evaluate
from .results import gradcam_key, kind_of, result_key, sweep_key
from .runner import JobContext
from .states import AnalysisState, ImageState, ModelState
from .store import ResultStore

if TYPE_CHECKING:
    from ...engine.evaluation import Evaluation
    from ...engine.results import MethodMaps

CHANNEL = "evaluate"
DEFAULT_CURVE = "deletion_pixels"


class EvaluationState(State):
    """What to evaluate, how, and the evaluation of the current prediction."""

    name = "evaluation"
    methods: Field[tuple[str, ...]] = Field(DEFAULT_METHODS)
    settings = Field(EvaluationSettings())
    strip_method: Field[str | None] = Field(None)  # the randomisation strip's method
    curve = Field(DEFAULT_CURVE)  # the curve drawn ('': all four)
    wanted: Field[EvaluationKey | None] = Field(None)  # Run was pressed for these choices

    def __init__(self, store: ResultStore, jobs: JobTable, analysis: AnalysisState,
                 model: ModelState, image: ImageState) -> None:
        super().__init__()
        self.store, self.jobs, self.analysis = store, jobs, analysis
        self.model, self.image = model, image
        jobs.register(Evaluate, self._job, done=lambda request, value: store.put(
            request.key, value), cancelled=self._on_stopped,
            failed=lambda request, *_: self._on_stopped(request))

    # -- choices -------------------------------------------------------------------------
    def set_method(self, method: str, on: bool) -> None:
        """Evaluate ``method`` or not (the registry's order is kept)."""
        chosen = set(self.methods) | {method} if on else set(self.methods) - {method}
        self.methods = tuple(m for m in METHODS if m in chosen)

    def update_settings(self, **changes: Any) -> None:
        self.settings = replace(self.settings, **changes).check()

    @property
    def quick(self) -> bool:
        """The settings are the quick preview's (``evaluation_plan.QUICK``; any seed)."""
        return replace(self.settings, seed=QUICK.seed) == QUICK

    def set_quick(self, on: bool) -> None:
        """The quick preview (fewer pixel steps, fewer chance runs, no randomisation
        check, no sensitivity), or the full evaluation's defaults; the seed is kept."""
        self.settings = replace(QUICK if on else EvaluationSettings(), seed=self.settings.seed)

    def skipped(self) -> str:
        """What these settings cut or skip against the full evaluation, in one line:
        the quick preview's own description, or '' for the full evaluation."""
        if self.quick:
            return QUICK_DESCRIPTION
        differences = self.settings.differences()
        return f"Not the full evaluation: {differences}." if differences else ""

    def _normalize(self, values: dict[str, Any]) -> dict[str, Any]:
        if "methods" in values:
            values["methods"] = tuple(m for m in METHODS if m in values["methods"])
        if "settings" in values:
            values["settings"] = values["settings"].check()
        return values

    # -- questions -----------------------------------------------------------------------
    def key(self) -> EvaluationKey | None:
        predict = self.store.predict_key
        if predict is None or not self.methods:
            return None
        options = self.analysis.method_options()
        return EvaluationKey(
            predict, self.methods,
            tuple((f.name, getattr(options, f.name)) for f in fields(options)),
            tuple((f.name, v) for f, v in zip(fields(self.settings), astuple(self.settings))))

    def result(self) -> Evaluation | None:
        key = self.key()
        return self.store.evaluation(key) if key is not None else None

    def planned(self) -> EvaluationKey | None:
        """The evaluation the planner should run: Run was pressed for these choices."""
        key = self.key()
        return key if key is not None and key == self.wanted else None

    def estimate(self) -> tuple[EvaluationCost, float | None] | None:
        """The evaluation's cost (an upper bound on the images through the model) and a
        rough time from one image's (``estimates.image_seconds``)."""
        pred = self.store.prediction
        if pred is None or not self.methods:
            return None
        h, w = pred.shape
        segments = self.store.segment_count(self.analysis.segments) or 0
        facts = ImageFacts(h, w, segments, len(pred.present_classes),
                           memory_facts(self.store))
        try:
            cost = evaluation_cost(facts, self.methods, self.analysis.method_options(),
                                   self.settings, computed=self._computed_names())
        except Exception:  # noqa: BLE001 - a bad option: the job says which, in one line
            return None
        per_image = image_seconds(self.store)
        seconds = cost.seconds(per_image) if per_image is not None else None
        return cost, seconds

    def is_running(self) -> bool:
        return self.jobs.is_running(CHANNEL)

    def was_stopped(self) -> bool:
        return self.jobs.is_blocked(CHANNEL)

    def _computed_names(self) -> list[str]:
        predict = self.store.predict_key
        if predict is None:
            return []
        analysis = self.analysis.choice
        return [m for m in self.methods if self.store.has(result_key(predict, analysis, m))]

    # -- the job -------------------------------------------------------------------------
    def run(self) -> None:
        """Evaluate the chosen methods for every predicted class (the planner asks for
        the job; Run after a Cancel runs it again)."""
        key = self.key()
        if key is None or self.store.session is None or self.store.has(key):
            return
        self.jobs.unblock(CHANNEL)
        if self.update(wanted=key) == frozenset():
            self.touch("wanted")

    def cancel(self) -> None:
        self.jobs.cancel(CHANNEL)

    def _on_stopped(self, request: Evaluate) -> bool:
        if self.wanted == request.key:
            self.wanted = None  # Run asks again; Compute does not
        return False  # a failure is still said

    def _job(self, request: Evaluate) -> Job:
        session = self.store.session
        assert session is not None
        predict, analysis = request.key.predict, self.analysis.choice
        options, settings, methods = analysis.method_options(), self.settings, self.methods
        gradcam = self.store.gradcam(gradcam_key(predict, analysis))
        sweep = self.store.sweep(sweep_key(predict, analysis))
        computed: dict[str, MethodMaps] = {}
        for m in methods:
            if kind_of(m).costed:
                maps = self.store.get(result_key(predict, analysis, m))
                if maps is not None:
                    computed[m] = maps

        def job(state: JobContext) -> Evaluation:
            from ...engine.evaluation import evaluate

            return evaluate(session, methods, None, options, settings, state=state,
                            computed=computed, gradcam=gradcam, sweep=sweep)

        return Job(job, "Evaluating the explanations")

    def context(self) -> dict[str, object]:
        """What the numbers' file says about the image and the model."""
        model = self.model.loaded
        info: dict[str, object] = {"image": self.image.label}
        if model is not None:
            info.update({"model": model.name, "weights": model.weights,
                         "untrained": model.untrained})
        if self.image.prepared is not None:
            info["working_size"] = list(self.image.prepared.shape)
        return info
