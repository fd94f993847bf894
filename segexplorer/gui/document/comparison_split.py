"""The comparison's split view in the canvas area, without Qt (``split_view``: A, B and
B - A or the changed pixels, on one display grid, so that zoom and pan can be linked),
and the hover text over it (``describe_pair_pixel``). The Compare panel's view is
:mod:`.comparison_view`.

The maps are drawn on one symmetric scale for A and B (equal colours, equal values:
Captum's red-white-green for sign "all") and B - A on a scale of its own in a diverging
map of other colours (``render.compare``), each with a colour bar in attribution units.
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
from .comparison import CHANGED, THIRD_LABELS
from .comparison_jobs import PairEntry, Second
from .comparison_view import comparison_status, model_label, target_pair
from .drawings import Drawings
from .events import depends_on
from .formatting import format_share, format_value

if TYPE_CHECKING:
    from ...engine.compare import ClassPair
    from ...engine.results import Prediction
    from .document import Document

T = TypeVar("T")
DISPLAY_LONGEST = 1024  # the views' grid: the original image's, at most this long
CACHE_SIZE = 48
SIDES = ("a", "b")


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


__all__ = ["Pane", "SplitView", "describe_pair_pixel", "display_grid", "split_view"]
