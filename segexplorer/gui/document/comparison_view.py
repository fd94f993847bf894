"""What the comparison shows, without Qt: the Compare panel (``comparison_view``: model B,
the memory the pair takes, the per-class table, both score charts in ablate mode). The
split view in the canvas area is :mod:`.comparison_split`.

Every number comes from the engine's ``Comparison`` (``engine.compare``) of the chosen
method; the maps are drawn on one symmetric scale for A and B (equal colours, equal
values: Captum's red-white-green for sign "all") and B - A on a scale of its own in a
diverging map of other colours (``render.compare``), each with a colour bar in
attribution units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...engine.methods import get_method
from .choices import METHOD_LABELS
from .comparison_jobs import PairEntry, Second
from .drawings import Drawings
from .events import depends_on
from .formatting import format_share, format_value
from .window_views import ModelView, describe_working

if TYPE_CHECKING:
    from ...engine.compare import ClassPair, Comparison
    from .document import Document

SIDES = ("a", "b")


# ======================================================================= the panel
@dataclass(frozen=True)
class CompareRow:
    """One class of the per-class table (the engine's row, and its text)."""

    name: str
    known_to: str  # 'both', 'a' or 'b'
    cells: tuple[str, ...]  # shares A -> B, IoU, scores A -> B, the maps' correlation
    tip: str
    values: dict[str, object]  # ``Comparison.rows()``'s row


@dataclass(frozen=True, eq=False)
class ScoresView:
    """One model's scores before and after the ablation (a score chart)."""

    title: str
    summary: str
    categories: tuple[str, ...]
    colors: np.ndarray
    before: np.ndarray | None  # None: nothing of the selection reaches this model's grid
    after: np.ndarray | None
    emphasis: frozenset[int]


@dataclass(frozen=True, eq=False)
class ComparisonView:
    """The Compare panel; ``signature`` changes whenever anything in it does."""

    signature: tuple[Any, ...]
    active: bool
    model: ModelView  # model B's working size as used
    title: str
    memory: str
    status: str
    refused: bool
    headers: tuple[str, ...]
    rows: tuple[CompareRow, ...]  # most changed first
    current: int | None  # the row of the class shown
    changed: str  # which pixels changed class
    ablation_status: str
    scores: tuple[ScoresView, ScoresView] | None
    can_close: bool


def _pair_text(second: Second | None, doc: Document) -> str:
    a, key = doc.model.loaded, doc.model.loaded_key
    if a is None or key is None:
        return ""
    text = f"A: {model_label(a.name, key.weights)}"
    if second is not None:
        text += f"\nB: {model_label(second.model.name, second.key.model.weights)}"
    return text


def model_label(name: str, weights: str) -> str:
    """'stain model, stain_nuclei_x1.6.pt': the model and, when they are a file or
    untrained, its weights."""
    from pathlib import Path

    if weights == "default":
        return name
    return f"{name}, {'untrained' if weights == 'untrained' else Path(weights).name}"


def comparison_status(doc: Document) -> tuple[str, bool]:
    """What the comparison is doing, or why it shows nothing; True: B was refused."""
    c = doc.comparison
    method = METHOD_LABELS[doc.analysis.method]
    if doc.store.prediction is None:
        return ("Open an image: both models predict it." if doc.image.prepared is None
                else "Waiting for A's prediction."), False
    if c.refusal:
        return c.refusal, True
    second = c.held()
    running, stopped = c.is_running(), c.was_stopped()
    if second is None:
        if running:
            return "Loading model B and predicting the image...", False
        if stopped:
            return "Model B was cancelled or failed. Press Compute to try again.", False
        return "Waiting for model B...", False
    result = c.result()
    if result is not None:
        notes = " ".join(result.notes)
        return (f"{method} compared in both models ({result.seconds:.1f} s)."
                + (f" {notes}" if notes else "")), False
    if c.waits_for_a():
        return (f"A's {method} is not computed yet: B's follows it (Compute runs a costly "
                "method)."), False
    if running:
        return f"Comparing {method} in both models...", False
    if stopped:
        return "The comparison was cancelled or failed. Press Compute to run it.", False
    return "Waiting for the comparison...", False


def _memory_text(second: Second | None) -> str:
    if second is None:
        return ""
    if second.shared or second.memory is None:
        return ("B is A's own model (the same weights): no second copy on the device. "
                "Choose B's weights, model or card below.")
    return f"Both on {second.memory.device}: {second.memory.describe()}."


def _cell(value: object, kind: str) -> str:
    if value is None:
        return "-"
    number = float(value)  # type: ignore[arg-type]
    if kind == "share":
        return format_share(number)
    if kind == "ratio":
        return f"{number:.3f}"
    return format_value(number)


def table_rows(comparison: Comparison, method: str) -> tuple[CompareRow, ...]:
    """The per-class table, most changed first (``Comparison.classes``' order)."""
    rows = []
    per_class = get_method(method).per_class
    flat = {str(r["class"]): r for r in comparison.rows()}
    for row in comparison.classes:
        values = flat[row.name]
        rho = values.get(f"{method}_spearman") if per_class else None
        stats = row.maps.get(method)
        cells = (f"{_cell(row.share_a, 'share')} \u2192 {_cell(row.share_b, 'share')}",
                 _cell(row.iou, "ratio"),
                 f"{_cell(row.score_a, 'score')} \u2192 {_cell(row.score_b, 'score')}",
                 _cell(rho, "ratio"))
        known = {"both": "both models", "a": "A only", "b": "B only"}[row.pair.known_to]
        tip = f"{row.name} ({known}): change 1 - IoU = {row.change:.3f}"
        if stats is not None:
            tip += (f"; {METHOD_LABELS[method]} over the union of the masks: mean |B - A| "
                    f"{format_value(stats.mean_abs_difference)}, mean B - A "
                    f"{format_value(stats.mean_difference)} (mean |A| "
                    f"{format_value(stats.mean_abs_a)}, mean |B| "
                    f"{format_value(stats.mean_abs_b)})")
        rows.append(CompareRow(row.name, row.pair.known_to, cells, tip, dict(values)))
    return tuple(rows)


def target_pair(doc: Document) -> ClassPair | None:
    """The class both views explain: A's target, or a class only B knows picked in the
    table."""
    second = doc.comparison.held()
    if second is None:
        return None
    if doc.comparison.target is not None:
        return second.matching.named(doc.comparison.target)
    target = doc.view.target
    if target is None:
        return None
    try:
        return second.matching.of("a", target)
    except KeyError:
        return None


def _changed_text(comparison: Comparison) -> str:
    if not comparison.transitions:
        return "No pixel changed class."
    top = ", ".join(f"{t.label} {format_share(t.share)}" for t in comparison.transitions[:3])
    more = len(comparison.transitions) - 3
    return (f"{format_share(comparison.changed_share)} of the pixels changed class: {top}"
            + (f" and {more} more" if more > 0 else "") + ".")


def _scores(doc: Document, entry: PairEntry, second: Second) -> tuple[ScoresView, ScoresView]:
    out = []
    for side in SIDES:
        pred = doc.store.prediction if side == "a" else second.prediction
        assert pred is not None
        outcome = entry.ablation.outcome(side)
        segments = entry.ablation.segments(side)
        name = "A" if side == "a" else "B"
        if outcome is None:
            out.append(ScoresView(f"{name}: nothing ablated", "The selection is too small "
                                  f"to reach {name}'s working grid.", pred.categories,
                                  pred.colors, None, None, frozenset()))
            continue
        delta = outcome.after - outcome.before
        biggest = int(np.argmax(np.abs(delta))) if delta.size else 0
        summary = (f"{format_share(outcome.changed_fraction)} of {name}'s pixels changed "
                   f"class; largest change: {pred.categories[biggest]} "
                   f"{'+' if delta[biggest] > 0 else ''}{format_value(float(delta[biggest]))}")
        emphasis = frozenset(s.class_index for s in segments.info
                             if s.id in outcome.segment_ids and s.class_index >= 0)
        out.append(ScoresView(f"{name}: every class's score", summary, pred.categories,
                              pred.colors, outcome.before, outcome.after, emphasis))
    return out[0], out[1]


@depends_on("comparison", "analysis", "view.target", "results", "jobs.compare", "image",
            "model", "ablation.active", "engine")
def comparison_view(doc: Document, drawings: Drawings) -> ComparisonView:
    """The Compare panel's content."""
    c = doc.comparison
    second = c.held()
    status, refused = comparison_status(doc)
    method = doc.analysis.method
    label = METHOD_LABELS[method]
    result = c.result()
    rows: tuple[CompareRow, ...] = ()
    current = None
    changed = ""
    if result is not None:
        rows = table_rows(result.comparison, method)
        pair = target_pair(doc)
        names = [r.name for r in rows]
        current = names.index(pair.name) if pair is not None and pair.name in names else None
        changed = _changed_text(result.comparison)
    scores = None
    ablation_status = ""
    entry = c.shown()
    if doc.ablation.active and second is not None:
        if entry is not None:
            scores = _scores(doc, entry, second)
            share = sum(s.pixels for s in entry.segments.info
                        if s.id in entry.ablation.segment_ids) / entry.segments.ids.size
            ablation_status = (f"Ablated in both models: {format_share(share)} of the image "
                               f"({entry.seconds:.2f} s).")
        elif c.selection is not None and c.is_running():
            ablation_status = "Ablating in both models..."
        else:
            ablation_status = ("Click a segment (the segments both models share), or draw "
                               "with the brush or the lasso, to ablate it in both models.")
    prepared = second.session.image if second is not None else None
    model = ModelView(describe_working(prepared) if prepared is not None else "",
                      doc.engine_ready)
    headers = ("Class", "Share A \u2192 B", "IoU", "Score A \u2192 B",
               f"rho {get_method(method).short_label}" if get_method(method).per_class
               else "rho")
    signature = (c.active, id(second), id(result), id(entry), status, current,
                 c.selection, doc.ablation.active, method, label, model.working_note)
    return ComparisonView(
        signature=signature, active=c.active, model=model, title=_pair_text(second, doc),
        memory=_memory_text(second), status=status, refused=refused, headers=headers,
        rows=rows, current=current, changed=changed, ablation_status=ablation_status,
        scores=scores, can_close=c.active)


__all__ = ["CompareRow", "ComparisonView", "ScoresView", "comparison_status",
           "comparison_view", "model_label", "table_rows", "target_pair"]
