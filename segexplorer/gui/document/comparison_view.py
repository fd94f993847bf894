"""What the comparison shows, without Qt: the Compare panel (``comparison_view``: model B,
the memory the pair takes, the per-class table, both score charts in ablate mode) and the
split view in the canvas area (``split_view``: A, B and B - A or the changed pixels, on
one display grid, so that zoom and pan can be linked).

Every number comes from the engine's ``Comparison`` (``engine.compare``) of the chosen
method; the maps are drawn on one symmetric scale for A and B (equal colours, equal
values: Captum's red-white-green for sign "all") and B - A on a scale of its own in a
diverging map of other colours (``render.compare``), each with a colour bar in
attribution units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ...engine.methods import get_method
from ...render import decode_segmap, outline_rgba, selection_outline
from ...render.compare import (
    DIFFERENCE_CMAP,
    display_shape,
    symmetric,
    symmetric_rgba,
    transition_colors,
)
from ...render.normalize import NormalizedAttr
from .choices import ABLATED, ATTRIBUTION, IMAGE, METHOD_LABELS, SEGMENTATION
from .comparison import CHANGED, THIRD_LABELS, PairEntry, Second
from .drawings import Drawings
from .events import depends_on
from .formatting import format_share, format_value
from .window_views import ModelView, describe_working

if TYPE_CHECKING:
    from ...engine.compare import ClassPair, Comparison
    from ...engine.results import Prediction
    from .document import Document

T = TypeVar("T")
DISPLAY_LONGEST = 1024  # the views' grid: the original image's, at most this long
CACHE_SIZE = 48
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


# ======================================================================= the split view
@dataclass(frozen=True, eq=False)
class Pane:
    """One of the three views: its title, what it draws over the image, its outline."""

    title: str
    overlay: np.ndarray | None  # on the display grid
    opacity: float
    outline: np.ndarray | None
    outline_key: object
    message: str  # why nothing is drawn


@dataclass(frozen=True, eq=False)
class SplitView:
    active: bool
    base: np.ndarray | None  # the image at its own resolution
    display: np.ndarray | None  # the image on the display grid (the overlays' grid)
    panes: tuple[Pane, ...]  # A, B, and B - A or the changed pixels
    maps_bar: NormalizedAttr | None  # A's and B's shared scale
    maps_caption: str
    third: str
    third_bar: NormalizedAttr | None  # B - A's scale
    third_cmap: str
    third_caption: str
    legend: tuple[tuple[str, tuple[int, int, int]], ...]  # the changed pixels' colours
    tool: str  # ablate mode's tool ('click', 'brush', 'lasso')
    ablate: bool


def _cached(doc: Document, key: tuple[Any, ...], make: Callable[[], T]) -> T:
    cache = doc.comparison.drawings
    if key in cache:
        value: T = cache[key]
        return value
    value = make()
    if len(cache) >= CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


def display_grid(doc: Document) -> tuple[int, int] | None:
    """The views' grid: the original image's (rows, columns), at most
    :data:`DISPLAY_LONGEST` long."""
    prepared = doc.image.prepared
    if prepared is None:
        return None
    width, height = prepared.original_size
    return display_shape((height, width), DISPLAY_LONGEST)


def _on_display(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from ...engine.compare import to_grid

    return np.ascontiguousarray(to_grid(array, shape))


def _prediction(doc: Document, side: str, second: Second) -> Prediction:
    pred = doc.store.prediction if side == "a" else second.prediction
    assert pred is not None
    return pred


def _side_pane(doc: Document, side: str, second: Second, pair: ClassPair | None,
               shape: tuple[int, int], maps_scale: float, entry: PairEntry | None
               ) -> tuple[np.ndarray | None, str]:
    """What model ``side``'s view draws for the chosen layer, or why it draws nothing."""
    layer, c = doc.layers.chosen, doc.comparison
    pred = _prediction(doc, side, second)
    name = "A" if side == "a" else "B"
    if layer == IMAGE:
        return None, ""
    if layer == SEGMENTATION:
        return _cached(doc, (second.key, side, "seg", shape), lambda: _on_display(
            decode_segmap(pred.class_map, pred.colors), shape)), ""
    if layer == ABLATED:
        if entry is None:
            return None, "Click a segment in ablate mode to ablate it in both models."
        outcome = entry.ablation.outcome(side)
        if outcome is None:
            return None, f"The selection is too small to reach {name}'s working grid."
        view = doc.ablation.view

        def draw() -> np.ndarray:
            from ...render import render_ablation_view

            drawn = render_ablation_view(view, pred.image, pred.class_map,
                                         outcome.ablated_input, outcome.class_map_after,
                                         outcome.changed, colors=pred.colors)
            return _on_display(drawn, shape)

        return _cached(doc, (entry.key, side, "ablated", view, shape), draw), ""
    assert layer == ATTRIBUTION
    result = c.result()
    if result is None:
        return None, comparison_status(doc)[0]
    method = doc.analysis.method
    values = _map(doc, side, pair, shape)
    if values is None:
        if pair is None:
            return None, "Pick a target class."
        if pair.index(side) is None:
            return None, f"{name} does not know '{pair.name}'."
        return None, f"No {METHOD_LABELS[method]} of '{pair.name}' in {name}."
    return _cached(doc, (result.key, side, "map", pair, shape, maps_scale), lambda: (
        symmetric_rgba(values, maps_scale)[0])), ""


def _map(doc: Document, side: str, pair: ClassPair | None, shape: tuple[int, int]
         ) -> np.ndarray | None:
    result = doc.comparison.result()
    if result is None:
        return None
    comparison, method = result.comparison, doc.analysis.method
    if not get_method(method).per_class:  # the activation: the same map for every class
        first = comparison.classes[0].pair if comparison.classes else None
        pair = pair or first
    if pair is None:
        return None
    return _cached(doc, (result.key, side, "values", pair, shape), lambda: (
        comparison.map_on_grid(side, method, pair, shape)))


def _outline(doc: Document, second: Second, side: str, pair: ClassPair | None,
             shape: tuple[int, int]) -> tuple[np.ndarray | None, object]:
    c = doc.comparison
    if doc.ablation.active:
        common = c.common_segments(c.selection.kind if c.selection is not None else None)
        chosen = set(c.selection.ids) if c.selection is not None else set()
        if c.hovered is not None and (c.selection is None
                                      or not c.selection.kind.startswith("region")):
            chosen.add(c.hovered)
        if common is None or not chosen:
            return None, None
        selected: tuple[Any, ...] = (second.key, common.kind, tuple(sorted(chosen)), shape)
        return _cached(doc, ("outline", *selected), lambda: selection_outline(
            _on_display(common.ids, shape), chosen)), selected
    if pair is None or not doc.layers.outline or doc.layers.chosen == IMAGE:
        return None, None

    def mask_of(s: str) -> np.ndarray:
        index = pair.index(s)
        pred = _prediction(doc, s, second)
        if index is None:
            return np.zeros(shape, bool)
        return np.asarray(_on_display(np.asarray(pred.mask(index), bool), shape), bool)

    key = (second.key, "target", side, pair, shape)
    if side == "both":
        return _cached(doc, key, lambda: outline_rgba(mask_of("a") | mask_of("b"))), key
    return _cached(doc, key, lambda: outline_rgba(mask_of(side))), key


@depends_on("comparison", "analysis", "view.target", "results", "jobs.compare", "image",
            "layers", "ablation.active", "ablation.view", "ablation.tool")
def split_view(doc: Document, drawings: Drawings) -> SplitView:
    """The canvas area's three views while comparing."""
    c = doc.comparison
    second, shape = c.held(), display_grid(doc)
    empty = SplitView(c.active, None, None, (), None, "", c.third, None, DIFFERENCE_CMAP, "",
                      (), doc.ablation.tool, doc.ablation.active)
    original = doc.image.original_rgb()
    if not c.active or shape is None or original is None:
        return empty
    display = _cached(doc, ("display", id(original), shape),
                      lambda: _on_display(original, shape))
    if second is None or doc.store.prediction is None:
        message = comparison_status(doc)[0]
        waiting = tuple(Pane(t, None, 1.0, None, None, message) for t in ("A", "B", ""))
        return SplitView(True, original, display, waiting, None, "", c.third, None,
                         DIFFERENCE_CMAP, "", (), doc.ablation.tool, doc.ablation.active)
    pair = target_pair(doc)
    method, result = doc.analysis.method, c.result()
    label = METHOD_LABELS[method]
    maps_scale, maps_bar, maps_caption = 0.0, None, ""
    if result is not None and doc.layers.chosen == ATTRIBUTION:
        found = [m for m in (_map(doc, s, pair, shape) for s in SIDES) if m is not None]
        maps_scale = symmetric(*found)
        if found:
            maps_bar = NormalizedAttr(np.zeros((1, 1), np.float32), maps_scale, "all")
            maps_caption = (f"A and B: {label} of '{pair.name if pair else '?'}', one "
                            "scale (attribution units)")
    entry = c.shown() if doc.ablation.active else None
    panes: list[Pane] = []
    for side in SIDES:
        overlay, message = _side_pane(doc, side, second, pair, shape, maps_scale, entry)
        name = "A" if side == "a" else "B"
        model = doc.model.loaded if side == "a" else second.model
        weights = (second.key.model if side == "b" else second.key.a.model).weights
        title = f"{name}: {model_label(model.name, weights)}" if model is not None else name
        outline, key = _outline(doc, second, side, pair, shape)
        opacity = doc.layers.opacity_of(doc.layers.chosen)
        panes.append(Pane(title, overlay, opacity, outline, key, message))
    third_bar, third_caption = None, ""
    legend: tuple[tuple[str, tuple[int, int, int]], ...] = ()
    third_overlay, third_message = None, ""
    if result is None:
        third_message = comparison_status(doc)[0]
        third_title = THIRD_LABELS[c.third]
    elif c.third == CHANGED:
        comparison = result.comparison
        third_title = f"{format_share(comparison.changed_share)} of the pixels"
        colors = transition_colors(len(comparison.transitions))

        def changed_rgba() -> np.ndarray:
            from ...render.compare import changed_pixels_rgba

            return changed_pixels_rgba(display, comparison.transition_map(shape), colors)

        third_overlay = _cached(doc, (result.key.pair, "changed", shape), changed_rgba)
        legend = tuple((t.label + f" {format_share(t.share)}",
                        (int(colors[k][0]), int(colors[k][1]), int(colors[k][2])))
                       for k, t in enumerate(comparison.transitions[:12]))
        third_caption = ("A's class -> B's class" if legend
                         else "No pixel changed class.")
    else:
        third_title = f"of '{pair.name}'" if pair else ""
        difference = None
        if pair is not None or not get_method(method).per_class:
            a, b = _map(doc, "a", pair, shape), _map(doc, "b", pair, shape)
            if a is not None and b is not None:
                difference = (b.astype(np.float64) - a.astype(np.float64)).astype(np.float32)
        if difference is None:
            third_message = ("Pick a class both models know." if pair is not None
                             else "Pick a target class.")
        else:
            spread = symmetric(difference)
            third_overlay, normalized = _cached(
                doc, (result.key, "difference", pair, shape),
                lambda: symmetric_rgba(difference, spread, DIFFERENCE_CMAP))
            third_bar = normalized if spread > 0 else None
            third_caption = ("B - A (attribution units): orange where B is higher, "
                             "purple where lower" if spread > 0 else
                             "B - A is 0 everywhere: the two maps are identical.")
    outline, key = _outline(doc, second, "both", pair, shape)
    panes.append(Pane(third_title, third_overlay,
                      1.0 if c.third == CHANGED else doc.layers.opacity_of(ATTRIBUTION),
                      outline, key, third_message))
    return SplitView(True, original, display, tuple(panes), maps_bar, maps_caption, c.third,
                     third_bar, DIFFERENCE_CMAP, third_caption, legend, doc.ablation.tool,
                     doc.ablation.active)


def describe_pair_pixel(doc: Document, x: int, y: int) -> str:
    """The status-bar text for pixel (x, y) of the views' grid: each model's class and
    score there, and B - A."""
    c, shape = doc.comparison, display_grid(doc)
    second = c.held()
    if shape is None or second is None or x < 0:
        return ("Ablate mode: click a segment to ablate it in both models." if
                doc.ablation.active else "Hover to read both models' classes; the table "
                "lists every class.")
    text = f"x {x}, y {y}"
    for side in SIDES:
        pred = _prediction(doc, side, second)
        h, w = pred.class_map.shape
        px = min(w - 1, int((x + 0.5) * w / shape[1]))
        py = min(h - 1, int((y + 0.5) * h / shape[0]))
        found = pred.describe_pixel(px, py)
        names = ", ".join(f"{pred.categories[k]} {score:.3g}" for k, score, _p in found)
        text += f"   {'A' if side == 'a' else 'B'}: {names or 'no class'}"
    pair = target_pair(doc)
    a, b = _map(doc, "a", pair, shape), _map(doc, "b", pair, shape)
    if a is not None and b is not None and doc.layers.chosen == ATTRIBUTION:
        text += (f"   A {format_value(float(a[y, x]))}, B {format_value(float(b[y, x]))}, "
                 f"B - A {format_value(float(b[y, x]) - float(a[y, x]))}")
    return text


__all__ = ["ComparisonView", "CompareRow", "Pane", "ScoresView", "SplitView",
           "comparison_view", "describe_pair_pixel", "display_grid", "split_view",
           "table_rows", "target_pair"]
