"""What the comparison's jobs run (on a worker thread: the engine, loaded there) and what
they return: B beside A (``prepare_second``), a selection ablated in both models
(``ablate_in_both``) and a method compared in both (``compare_in_both``). The state that
asks for them, and keeps what they return, is :mod:`.comparison`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...engine.methods import get_method
from .choices import AnalysisChoice
from .keys import ComparisonKey, ModelKey, PairAblationKey, SecondKey
from .runner import JobContext

if TYPE_CHECKING:  # the engine imports torch: loaded by the jobs
    from PIL.Image import Image

    from ...engine.analysis import ExplainRequest
    from ...engine.budget import MemoryBudget
    from ...engine.compare import ClassMatching, CommonSegments, Comparison
    from ...engine.compare_run import Computed, PairAblation, PairMemory
    from ...engine.image import PreparedImage
    from ...engine.models import LoadedModel
    from ...engine.results import Prediction
    from ...engine.session import Session


@dataclass(frozen=True, eq=False)
class Second:
    """B beside A: the model, its session on the image, its prediction, the classes
    matched by name, and what the two models take on the device (None: B is A)."""

    key: SecondKey
    model: LoadedModel
    session: Session
    prediction: Prediction
    matching: ClassMatching
    memory: PairMemory | None
    shared: bool  # B is A's own model (the same weights): no second copy


@dataclass(frozen=True, eq=False)
class PairComparison:
    key: ComparisonKey
    comparison: Comparison
    notes: tuple[str, ...]  # e.g. B's layer fell back to its default
    seconds: float


@dataclass(frozen=True, eq=False)
class PairEntry:
    """One selection ablated in both models."""

    key: PairAblationKey
    ablation: PairAblation
    segments: CommonSegments  # on the comparison's grid
    seconds: float


def explain_request(model: ModelKey, size: int, analysis: AnalysisChoice, precision: str,
                    image: str, layer: str | None) -> ExplainRequest:
    """The engine's request for one side: the analysis's options, the side's model."""
    from ...engine.analysis import ExplainRequest

    options = analysis.method_options()
    return ExplainRequest(
        image=image or "image", model=model.architecture, weights=model.weights,
        device=model.device, size=size, methods=(analysis.method,), layer=layer,
        segments=options.segments, baseline=options.baseline, upsample=options.upsample,
        aggregation=options.aggregation, precision=precision, n_steps=options.n_steps,
        ig_method=options.ig_method, window=options.window, stride=options.stride,
        n_samples=options.n_samples, shapley_mode=options.shapley_mode)


def short_name(architecture: str) -> str:
    """A card's file name, or a built-in architecture's name."""
    from pathlib import Path

    return Path(architecture).name


def prepare_second(key: SecondKey, a_model: LoadedModel, prepared_a: PreparedImage,
                   pil: Image, held: LoadedModel | None, precision: str,
                   budget: MemoryBudget) -> Callable[[JobContext], Second]:
    """B loaded (``held`` when it is A's own model or kept from before), the pair checked
    against ``budget`` on A's device (refused in one line), and B's prediction."""
    shared = key.model == key.a.model

    def job(state: JobContext) -> Second:
        from ...engine.compare import match_classes
        from ...engine.compare_run import pair_memory, side_label, to_device
        from ...engine.errors import UserError
        from ...engine.image import preprocess
        from ...engine.jobs import check_cancelled
        from ...engine.models import load_model
        from ...engine.session import Session

        b = held
        if b is None:
            try:
                b = load_model(key.model.architecture, key.model.weights, "cpu",
                               state=state)
            except UserError as exc:
                raise UserError(f"Model B ({short_name(key.model.architecture)}): "
                                f"{exc}") from None
        check_cancelled(state)
        labels = (side_label("a", a_model), side_label("b", b))
        matching = match_classes(a_model.categories, b.categories, labels)
        prepared = preprocess(pil, key.size, b.normalization)
        memory = None
        if not shared:
            memory = pair_memory(a_model, b, prepared_a.shape, prepared.shape,
                                 a_model.device, labels, budget)
            if not memory.fits:
                raise UserError(f"The two models do not fit on {memory.device}: "
                                f"{memory.describe()}. Choose a smaller working size "
                                "for A or B, another device, smaller models, or a "
                                "larger memory budget (Edit > Preferences).")
            b = to_device(b, a_model.device)
        session = Session(b, prepared, precision=precision, budget=budget)
        state.set_progress(0, 1, "Comparing: B's prediction")
        return Second(key, b, session, session.predict(state), matching, memory, shared)

    return job


def ablate_in_both(key: PairAblationKey, session_a: Session, session_b: Session,
                   common: CommonSegments) -> Callable[[JobContext], PairEntry]:
    """The selection of ``key`` ablated in both models (segments on the common grid)."""
    selection = key.selection

    def job(state: JobContext) -> PairEntry:
        from ...engine.compare_run import ablate_both

        start = time.perf_counter()
        pair = ablate_both(session_a, session_b, common, selection.ids,
                           baseline=selection.baseline, state=state)
        return PairEntry(key, pair, common, time.perf_counter() - start)

    return job


def compare_in_both(key: ComparisonKey, analysis: AnalysisChoice, computed: Computed,
                    session_a: Session, request_a: ExplainRequest, second: Second,
                    label: str) -> Callable[[JobContext], PairComparison]:
    """The analysis's method compared in both models, reusing A's results (``computed``);
    B falls back to its default layer when it has no layer of A's name (a note says so)."""
    a_key, b_key = key.pair.a, key.pair.model
    b_model, session_b = second.model, second.session

    def job(state: JobContext) -> PairComparison:
        from ...engine.compare_run import compare_sessions
        from ...engine.errors import UserError

        start = time.perf_counter()
        notes: list[str] = []
        layer = analysis.layer or None
        if layer is not None and get_method(analysis.method).takes_layer:
            try:
                b_model.check_layer(layer)
            except UserError:
                notes.append(f"B has no usable layer '{layer}': B uses its default "
                             f"layer {b_model.default_layer}.")
                layer = None
        request_b = explain_request(b_key, key.pair.size, analysis, a_key.precision,
                                    label, layer)
        comparison = compare_sessions(session_a, session_b, request_a, request_b,
                                      matching=second.matching, computed_a=computed,
                                      state=state)
        return PairComparison(key, comparison, tuple(notes),
                              time.perf_counter() - start)

    return job
