"""The Evaluate panel's state, without Qt: which methods to evaluate, how, its cost before
it runs, the job, and the result for the current prediction.

An evaluation never starts by itself (it sends hundreds of images through the model): the
panel shows its cost, Run starts it (progress and Cancel as every job), and its result is
kept in the store under an :class:`EvaluationKey` (the methods, every method option and
the evaluation's settings), so coming back to the same choices shows it at once.
"""

from __future__ import annotations

from dataclasses import astuple, fields, replace
from typing import TYPE_CHECKING, Any

from ...engine.evaluation_plan import EvaluationCost, EvaluationSettings, evaluation_cost
from ...engine.methods import DEFAULT_METHODS, METHODS, ImageFacts
from .estimates import segment_count
from .keys import EvaluationKey
from .planner import gradcam_key, method_key, sweep_key
from .runner import JobContext

if TYPE_CHECKING:
    from ...engine.evaluation import Evaluation
    from .document import Document

CHANNEL = "evaluate"


class EvaluationDoc:
    """What to evaluate and the evaluation of the current prediction."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.methods: tuple[str, ...] = DEFAULT_METHODS
        self.settings = EvaluationSettings()
        self.strip_method: str | None = None  # the randomisation strip's method

    # -- choices -------------------------------------------------------------------------
    def set_methods(self, methods: tuple[str, ...]) -> None:
        chosen = tuple(m for m in METHODS if m in methods)  # the registry's order
        if chosen != self.methods:
            self.methods = chosen
            self.doc.changed()

    def set_settings(self, settings: EvaluationSettings) -> None:
        settings = settings.check()
        if settings != self.settings:
            self.settings = settings
            self.doc.changed()

    def update_settings(self, **changes: Any) -> None:
        self.set_settings(replace(self.settings, **changes))

    def set_strip_method(self, method: str) -> None:
        if method != self.strip_method:
            self.strip_method = method
            self.doc.changed()

    # -- questions -----------------------------------------------------------------------
    def key(self) -> EvaluationKey | None:
        predict = self.doc.predict_key
        if predict is None or not self.methods:
            return None
        options = self.doc.analysis.method_options()
        return EvaluationKey(
            predict, self.methods,
            tuple((f.name, getattr(options, f.name)) for f in fields(options)),
            tuple((f.name, v) for f, v in zip(fields(self.settings), astuple(self.settings))))

    def result(self) -> Evaluation | None:
        key = self.key()
        return self.doc.store.evaluation(key) if key is not None else None

    def estimate(self) -> tuple[EvaluationCost, float | None] | None:
        """The evaluation's cost (an upper bound on the images through the model) and a
        rough time from the prediction's own forward pass."""
        doc = self.doc
        pred, prepared = doc.prediction, doc.prepared
        if pred is None or prepared is None or not self.methods:
            return None
        h, w = prepared.shape
        segments = segment_count(doc, doc.analysis.segments) or 0
        facts = ImageFacts(h, w, segments, len(pred.present_classes))
        try:
            cost = evaluation_cost(facts, self.methods, doc.analysis.method_options(),
                                   self.settings, computed=self._computed_names())
        except Exception:  # noqa: BLE001 - a bad option: the job says which, in one line
            return None
        seconds = cost.seconds(pred.seconds) if pred.seconds > 0 else None
        return cost, seconds

    def is_running(self) -> bool:
        return self.doc.jobs.is_running(CHANNEL)

    def was_stopped(self) -> bool:
        return self.doc.jobs.is_blocked(CHANNEL)

    def _computed_names(self) -> list[str]:
        doc, predict = self.doc, self.doc.predict_key
        if predict is None:
            return []
        names = []
        analysis = doc.analysis
        for m in self.methods:
            if m in ("gradcam", "activation"):
                if doc.store.gradcam(gradcam_key(predict, analysis)) is not None:
                    names.append(m)
            elif m == "ablation":
                if doc.store.sweep(sweep_key(predict, analysis)) is not None:
                    names.append(m)
            elif doc.store.method(method_key(predict, analysis, m)) is not None:
                names.append(m)
        return names

    # -- the job -------------------------------------------------------------------------
    def run(self) -> None:
        """Evaluate the chosen methods for every predicted class (a job)."""
        doc, key = self.doc, self.key()
        session = doc.session
        if key is None or session is None:
            return
        if doc.store.has(key):
            doc.changed()
            return
        predict, analysis = key.predict, doc.analysis
        options = analysis.method_options()
        settings = self.settings
        gradcam = doc.store.gradcam(gradcam_key(predict, analysis))
        sweep = doc.store.sweep(sweep_key(predict, analysis))
        computed = {}
        for m in self.methods:
            maps = doc.store.method(method_key(predict, analysis, m))
            if maps is not None:
                computed[m] = maps
        methods = self.methods

        def job(state: JobContext) -> Evaluation:
            from ...engine.evaluation import evaluate

            return evaluate(session, methods, None, options, settings, state=state,
                            computed=computed, gradcam=gradcam, sweep=sweep)

        doc.submit(CHANNEL, key, job, lambda value: doc.store.put(key, value),
                   label="Evaluating the explanations", force=True)
        doc.changed()

    def cancel(self) -> None:
        self.doc.cancel_channel(CHANNEL)
        self.doc.changed()

    def context(self) -> dict[str, object]:
        """What the numbers' file says about the image and the model."""
        doc = self.doc
        model = doc.model
        info: dict[str, object] = {"image": doc.image_label()}
        if model is not None:
            info.update({"model": model.name, "weights": model.weights,
                         "untrained": model.untrained})
        if doc.prepared is not None:
            info["working_size"] = list(doc.prepared.shape)
        return info
