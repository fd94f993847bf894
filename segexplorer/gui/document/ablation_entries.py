"""One computed ablation and everything shown for it (the views, the thumbnails, the
summary), made once the engine has answered (``make_entry``).

A multi-label model's new segmentation is each class's mask after the ablation, drawn as
layers with outlines over the ablated input (``render.multilabel_overlay``, as
``segexplorer ablate`` writes it), and a changed pixel is one whose set of classes
changed (``AblationOutcome.changed``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ...render import (
    VIEW_AFTER,
    VIEW_CHANGED,
    VIEW_INPUT,
    ablation_views,
    changed_pixels,
    multilabel_overlay,
    render_ablation_view,
)
from ...render import thumbnail_views as _thumbnail_views
from ...render.overlays import THUMB_SOURCE_PX
from .choices import BASELINE_LABELS
from .formatting import format_share
from .keys import Selection
from .labels import segments_kind_label, visible_classes

if TYPE_CHECKING:  # the engine's ablation code imports torch: loaded when first used
    from ...engine.results import Prediction
    from ...engine.segments import Segments
    from ...engine.session import AblationOutcome

VIEW_LABELS = {
    VIEW_INPUT: "Ablated input",
    VIEW_AFTER: "New segmentation",
    VIEW_CHANGED: "Changed pixels",
}
HINT = "Click a segment to ablate it; Shift+click adds or removes one; Esc resets."
Views = dict[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class AblationEntry:
    """One computed ablation with everything shown for it.

    The full-size views are drawn when first shown (a click must not pay for drawing
    images nobody looks at); the thumbnails are drawn at once, from every few pixels.
    """

    selection: Selection
    segments: Segments
    outcome: AblationOutcome
    prediction: Prediction = field(repr=False)
    label: str  # the segments' names, e.g. 'person + dog'
    summary: str  # e.g. 'person -83 %; 12 % of pixels changed class'
    thumbnails: Views = field(repr=False)  # VIEW_* -> small RGB(A)
    seconds: float = 0.0  # until the engine answered
    _views: Views = field(default_factory=dict, repr=False)

    def forget_views(self) -> None:
        self._views.clear()

    def view(self, name: str, originals: Views | None = None,
             hidden: frozenset[int] = frozenset()) -> np.ndarray:
        """A full-size view (VIEW_*), H x W x 3|4 uint8; ``originals`` make it cheaper;
        a multi-label model's new segmentation leaves the ``hidden`` classes out."""
        pred, outcome = self.prediction, self.outcome
        key = name if not (hidden and outcome.masks_after is not None and name == VIEW_AFTER) \
            else f"{name} {sorted(hidden)}"
        if key not in self._views:
            if outcome.masks_after is not None:
                self._views[key] = _multilabel_views(
                    pred, outcome.ablated_input, outcome.masks_after, outcome.changed,
                    hidden, only=name)[name]
            else:
                self._views[key] = render_ablation_view(
                    name, pred.image, pred.class_map, outcome.ablated_input,
                    outcome.class_map_after, outcome.changed, originals, pred.colors)
        return self._views[key]

    @property
    def baseline_text(self) -> str:
        return BASELINE_LABELS.get(self.selection.baseline, self.selection.baseline)

    def details(self) -> str:
        n = len(self.selection.ids)
        how = ("answered from the ablation sweep, no forward pass" if self.outcome.from_cache
               else "one forward pass")
        kind = segments_kind_label(self.segments)
        return (f"{n} segment{'s' if n != 1 else ''} ({kind}), baseline "
                f"{self.baseline_text}; {how}, {self.seconds * 1000:.0f} ms")

    def shares(self) -> str:
        """A multi-label model's classes before and after, each its own share of the
        pixels, and the pixels in no class ('' for other models)."""
        pred, after = self.prediction, self.outcome.masks_after
        if after is None or pred.masks is None:
            return ""
        size = after[0].size if len(after) else 1
        parts = [f"{name} {format_share(float(pred.masks[c].sum()) / size)} -> "
                 f"{format_share(float(after[c].sum()) / size)}"
                 for c, name in enumerate(pred.categories)
                 if pred.masks[c].any() or after[c].any()]
        nothing = (float(np.count_nonzero(~pred.masks.any(axis=0))) / size,
                   float(np.count_nonzero(~after.any(axis=0))) / size)
        parts.append(f"no class {format_share(nothing[0])} -> {format_share(nothing[1])}")
        return "Shares before -> after: " + ", ".join(parts)

    def history_text(self) -> str:
        return f"{self.label}  [{self.selection.baseline}]\n{self.summary}"


def region_mask(tool: str, points: list[tuple[float, float]], shape: tuple[int, int],
                radius: float) -> np.ndarray:
    """The working pixels a drawn region covers (H x W bool): a ``lasso`` (the polygon
    through ``points``) or a ``brush`` stroke (``radius`` pixels on each side)."""
    from PIL import Image, ImageDraw

    h, w = shape
    canvas = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    if tool == "lasso" and len(points) >= 3:
        draw.polygon(points, fill=1, outline=1)
    else:  # a brush stroke: a thick line with round ends
        r = max(0.5, float(radius))
        if len(points) > 1:
            draw.line(points, fill=1, width=max(1, round(2 * r)))
        for x, y in points:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=1)
    return np.asarray(canvas, dtype=bool)


def _multilabel_views(prediction: Prediction, ablated: np.ndarray, masks_after: np.ndarray,
                      changed: np.ndarray, hidden: frozenset[int] = frozenset(),
                      only: str | None = None, step: int = 1) -> Views:
    """A multi-label model's views (every ``step``-th pixel): the ablated input, each
    class's mask after it as layers and outlines over it, the pixels whose set of classes
    changed; ``only``: just that one."""
    sub = np.s_[::step, ::step]
    image, ablated = prediction.image[sub], ablated[sub]
    views: Views = {}
    if only in (None, VIEW_INPUT):
        views[VIEW_INPUT] = np.ascontiguousarray(ablated)
    if only in (None, VIEW_AFTER):
        views[VIEW_AFTER] = multilabel_overlay(
            ablated, masks_after[:, ::step, ::step], prediction.colors,
            visible=visible_classes(len(masks_after), hidden))
    if only in (None, VIEW_CHANGED):
        views[VIEW_CHANGED] = changed_pixels(changed[sub], image)
    return views


def _thumb_step(prediction: Prediction) -> int:
    return max(1, min(prediction.shape) // THUMB_SOURCE_PX)


def original_views(prediction: Prediction, hidden: frozenset[int] = frozenset()) -> Views:
    """The three views with nothing ablated (what ablate mode shows before a click)."""
    if prediction.masks is not None:
        return _multilabel_views(prediction, prediction.image, prediction.masks,
                                 np.zeros(prediction.shape, bool), hidden)
    cm = prediction.class_map
    return ablation_views(prediction.image, cm, prediction.image, cm, prediction.colors)


def original_thumbnails(prediction: Prediction) -> Views:
    if prediction.masks is not None:
        return _multilabel_views(prediction, prediction.image, prediction.masks,
                                 np.zeros(prediction.shape, bool), step=_thumb_step(prediction))
    cm = prediction.class_map
    return _thumbnail_views(prediction.image, cm, prediction.image, cm, prediction.colors)


def selection_label(categories: tuple[str, ...], segments: Segments,
                    segment_ids: tuple[int, ...]) -> str:
    """engine.ablation.selection_label, imported when first needed (it imports torch)."""
    from ...engine.ablation import selection_label as label

    return label(categories, segments, segment_ids)


def make_entry(selection: Selection, segments: Segments, outcome: AblationOutcome,
               prediction: Prediction, seconds: float) -> AblationEntry:
    """Everything shown for one ablation (``seconds``: until the engine answered)."""
    from ...engine.ablation import summary_line

    after = outcome.class_map_after
    if after.size and after.max() < 256:  # the history keeps many: 1 byte a pixel, not 8
        outcome = replace(outcome, class_map_after=after.astype(np.uint8))
    summary = summary_line(prediction, outcome, segments)
    if outcome.masks_after is not None:
        thumbnails = _multilabel_views(prediction, outcome.ablated_input, outcome.masks_after,
                                       outcome.changed, step=_thumb_step(prediction))
        # a multi-label pixel changes when its set of classes does
        summary = summary.removesuffix("changed class") + "changed their set of classes"
    else:
        thumbnails = _thumbnail_views(prediction.image, prediction.class_map,
                                      outcome.ablated_input, outcome.class_map_after,
                                      prediction.colors)
    return AblationEntry(
        selection=selection, segments=segments, outcome=outcome, prediction=prediction,
        label=selection_label(prediction.categories, segments, selection.ids),
        summary=summary, thumbnails=thumbnails, seconds=seconds)
