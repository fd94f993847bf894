"""The side panels' content, without Qt: the Ablation panel and the Evaluate panel, each
a frozen value its view function computes from the document (``signature`` changes
whenever anything in it does, so a panel skips an unchanged view)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...engine.evaluation_plan import EvaluationSettings
from ...render import render_attribution
from ...render.evaluation import TargetCurves
from .ablation_entries import selection_label
from .choices import METHOD_LABELS
from .drawings import Drawings
from .estimates import describe_run
from .events import depends_on
from .explain_view import multilabel
from .labels import changed_meaning, scores_title, segment_labels, segments_tip

if TYPE_CHECKING:
    from ...engine.evaluation import Evaluation
    from .document import Document


@dataclass(frozen=True, eq=False)
class AblationResultView:
    summary: str
    details: str
    categories: tuple[str, ...]
    colors: np.ndarray
    before: np.ndarray
    after: np.ndarray
    emphasis: frozenset[int]


@dataclass(frozen=True, eq=False)
class AblationView:
    """The ablation panel's content; ``signature`` changes whenever anything in it does."""

    signature: tuple[Any, ...]
    has_prediction: bool
    thumbnails: dict[str, np.ndarray] | None
    result: AblationResultView | None
    status: tuple[str, str] | None  # (what, details) when the selection has no result
    history: tuple[tuple[str, str], ...]  # (text, tooltip), oldest first
    current: int | None
    sweep_text: str
    can_precompute: bool
    can_export: bool
    can_reset: bool
    can_undo: bool
    can_redo: bool
    # what the changed pixels are (a multi-label model's: their set of classes changed)
    changed_tip: str = ""
    # (value, label) of each kind of segments (a multi-label model's are label sets)
    segment_labels: tuple[tuple[str, str], ...] = ()
    segments_tip: str = ""
    scores_title: tuple[str, str] = ("", "")  # the score chart's title and tooltip


@dataclass(frozen=True, eq=False)
class AreaRow:
    """A method's areas under its four curves; ``best`` marks where it is the best."""

    method: str
    label: str
    aucs: tuple[float, ...]  # CURVE_ORDER
    best: tuple[bool, ...]


@dataclass(frozen=True, eq=False)
class StripCell:
    rgba: np.ndarray  # the map, small, drawn as Captum's heat map
    caption: str


@dataclass(frozen=True, eq=False)
class EvaluationView:
    """The Evaluate panel; ``signature`` changes whenever anything in it does."""

    signature: tuple[Any, ...]
    methods: tuple[tuple[str, str, bool], ...]  # (name, label, chosen), the registry's order
    settings: EvaluationSettings
    cost_text: str
    status: str
    can_run: bool
    running: bool
    curves: TargetCurves | None  # the target's, once evaluated
    areas: tuple[AreaRow, ...]
    chance: tuple[float, ...]  # chance's mean area per curve
    strip_methods: tuple[tuple[str, str], ...]
    strip_method: str | None
    strip: tuple[StripCell, ...]
    verdicts: tuple[tuple[str, str, bool], ...]  # (label, verdict, flagged)
    can_export: bool
    curve: str  # the curve drawn ('': all four)
    quick: bool = False  # the quick preview's settings (the cost text says what it skips)


def _heat(values: np.ndarray) -> np.ndarray:
    """A small map drawn as Captum's heat map (both signs)."""
    try:
        return render_attribution(values, None, "heat_map", "all").rgba
    except ValueError:  # an all-zero map: Captum cannot normalise it
        return np.full((*values.shape, 4), 255, np.uint8)


@depends_on("ablation", "analysis.segments", "analysis.baseline", "results", "jobs.ablated",
            "jobs.sweep", "image")
def ablation_view(doc: Document, drawings: Drawings) -> AblationView:
    """The Ablation panel's content."""
    ab, pred, choice = doc.ablation, doc.store.prediction, doc.analysis
    sweep = doc.store.sweep_for(choice.segments, choice.baseline) if pred is not None \
        else None
    computing = ab.is_computing()
    history = ab.history
    sweep_running = doc.jobs.is_running("sweep")
    signature = (ab.active, doc.store.predict_key, id(ab.shown), ab.selection, computing,
                 len(history), id(sweep), sweep_running, ab.view, choice.segments,
                 choice.baseline, doc.image.prepared is None)
    labels = multilabel(doc)
    common: dict[str, Any] = {"signature": signature, "can_export": ab.shown is not None,
                              "can_reset": ab.selection is not None,
                              "can_undo": ab.can_undo(), "can_redo": ab.can_redo(),
                              "changed_tip": changed_meaning(labels),
                              "segment_labels": tuple(segment_labels(labels).items()),
                              "segments_tip": segments_tip(labels) if labels else "",
                              "scores_title": scores_title(labels)}
    if pred is None:
        return AblationView(has_prediction=False, thumbnails=None, result=None,
                            status=None, history=(), current=None,
                            sweep_text=("Waiting for the model's prediction."
                                        if doc.image.prepared is not None
                                        else "Open an image to ablate its segments."),
                            can_precompute=False, **common)
    entry = ab.shown
    result = None
    if entry is None:
        thumbnails = ab.drawings.original_thumbnails()
    else:
        thumbnails = entry.thumbnails
        emphasis = frozenset(c for s in entry.segments.info if s.id in entry.selection.ids
                             for c in (s.classes if s.classes is not None
                                       else (s.class_index,))
                             if 0 <= c < len(pred.categories))
        details = entry.details()
        if entry.shares():  # a multi-label model's classes before and after
            details += "\n" + entry.shares()
        result = AblationResultView(entry.summary, details, pred.categories,
                                    doc.store.class_colors(), entry.outcome.before,
                                    entry.outcome.after, emphasis)
    status = None
    if computing and ab.selection is not None:
        label = selection_label(pred.categories, ab.segments_for(ab.selection.kind),
                                ab.selection.ids)
        status = (f"Ablating {label}...",
                  "One forward pass in the background; a newer click replaces it.")
    elif ab.selection is not None and (entry is None or entry.selection != ab.selection):
        status = ("Not ablated", "The ablation was cancelled or failed: click the "
                  "segment again to retry.")
    current = history.index(entry) if entry is not None and entry in history else None
    if sweep is not None:
        sweep_text, can_precompute = ("Single-segment clicks are answered from the "
                                      "ablation sweep at once (no forward pass).", False)
    elif sweep_running:
        sweep_text, can_precompute = ("The ablation sweep is running: single-segment "
                                      "clicks will then be answered at once.", False)
    else:
        sweep_text, can_precompute = ("Each click runs one forward pass. Precompute every "
                                      "single-segment click (one forward pass per "
                                      "segment)?", True)
    return AblationView(
        has_prediction=True, thumbnails=thumbnails, result=result, status=status,
        history=tuple((e.history_text(), e.details()) for e in history), current=current,
        sweep_text=sweep_text, can_precompute=can_precompute, **common)


@depends_on("evaluation", "analysis", "results", "jobs.evaluate", "view.target", "image",
            "model.memory_gib")
def evaluation_view(doc: Document, drawings: Drawings) -> EvaluationView:
    """The Evaluate panel's content (the drawn randomisation strips are kept)."""
    ev, strips = doc.evaluation, drawings.strips
    result, pred, target = ev.result(), doc.store.prediction, doc.view.target
    running, stopped = ev.is_running(), ev.was_stopped()
    estimate = ev.estimate()
    if estimate is None:
        cost_text = ("Choose at least one method." if pred is not None and not ev.methods
                     else "")
    else:
        cost, seconds = estimate
        cost_text = describe_run(cost.describe(), seconds, cost.memory, "at most about")
    skipped = ev.skipped()
    if skipped and pred is not None and ev.methods:
        cost_text = f"{skipped} {cost_text[:1].upper()}{cost_text[1:]}"
    if pred is None:
        status = "Open an image: the evaluation measures the explanations of its classes."
    elif running:
        status = "Evaluating... (Cancel stops it)"
    elif result is not None:
        status = (f"Evaluated {len(result.methods)} method"
                  f"{'s' if len(result.methods) != 1 else ''} for "
                  f"{len(result.targets)} classes in {result.seconds:.1f} s "
                  f"({sum(result.images.values())} images through the model).")
    elif stopped:
        status = "The evaluation was cancelled or failed. Press Run to start it again."
    else:
        status = "Not evaluated for these choices. Press Run."
    labels = {m: METHOD_LABELS[m] for m in METHOD_LABELS}
    curves = None
    areas: tuple[AreaRow, ...] = ()
    chance: tuple[float, ...] = ()
    verdicts: tuple[tuple[str, str, bool], ...] = ()
    strip: tuple[StripCell, ...] = ()
    strip_method = None
    strip_methods: tuple[tuple[str, str], ...] = ()
    if result is not None and target is not None and target in result.targets:
        from ...render.evaluation import CURVE_ORDER, BandData, CurveData

        curves = TargetCurves(
            title=(f"'{result.categories[target]}' (class {target})"),
            curves={m: {n: CurveData(cv.x, cv.y, cv.auc)
                        for n, cv in result.result(m, target).curves.items()}
                    for m in result.methods},
            chance={n: BandData(b.x, b.mean, b.std, b.auc_mean)
                    for n, b in result.chance[target].items()},
            labels={m: labels[m] for m in result.methods},
            best={n: result.best_methods(target, n) for n in CURVE_ORDER})
        best = {n: result.best_methods(target, n) for n in CURVE_ORDER}
        areas = tuple(
            AreaRow(m, labels[m],
                    tuple(result.result(m, target).curves[n].auc for n in CURVE_ORDER),
                    tuple(m in best[n] for n in CURVE_ORDER))
            for m in result.methods)
        chance = tuple(result.chance[target][n].auc_mean for n in CURVE_ORDER)
        verdicts = tuple((labels[m], result.verdict(m, target),
                          bool(result.result(m, target).survives_randomisation))
                         for m in result.methods)
        strip_methods = tuple((m, labels[m]) for m in result.methods)
        strip_method = (ev.strip_method if ev.strip_method in result.methods
                        else result.methods[0])
        strip = strip_cells(strips, result, strip_method, target)
    signature = (doc.store.predict_key, id(result), target, running, stopped, ev.methods,
                 ev.settings, cost_text, strip_method, pred is None, ev.curve)
    return EvaluationView(
        signature=signature,
        methods=tuple((m, labels[m], m in ev.methods) for m in METHOD_LABELS),
        settings=ev.settings, cost_text=cost_text, status=status,
        can_run=pred is not None and bool(ev.methods) and not running
        and result is None,
        running=running, curves=curves, areas=areas, chance=chance,
        strip_methods=strip_methods, strip_method=strip_method, strip=strip,
        verdicts=verdicts, can_export=result is not None, curve=ev.curve, quick=ev.quick)


def strip_cells(strips: dict[tuple[Any, ...], tuple[StripCell, ...]], result: Evaluation,
                method: str, target: int) -> tuple[StripCell, ...]:
    """The randomisation strip: the map, then the map at each stage, drawn small."""
    key = ("strip", id(result), method, target)
    cached = strips.get(key)
    if cached is not None:
        return cached
    r = result.result(method, target)
    cells = []
    if r.thumbnail is not None:
        cells.append(StripCell(_heat(r.thumbnail), "original"))
    for stage in r.mprt:
        rho = "n/a" if not np.isfinite(stage.spearman) else f"{stage.spearman:.2f}"
        cells.append(StripCell(_heat(stage.thumbnail),
                               f"{stage.layer} ({stage.layers_randomised})\n"
                               f"rho {rho}, SSIM {stage.ssim:.2f}"))
    out = tuple(cells)
    if len(strips) > 16:
        strips.clear()
    strips[key] = out
    return out
