"""One computed ablation and everything shown for it (the views, the thumbnails, the
summary), made once the engine has answered (``make_entry``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ...render import VIEW_AFTER, VIEW_CHANGED, VIEW_INPUT, ablation_views, render_ablation_view
from ...render import thumbnail_views as _thumbnail_views
from .choices import BASELINE_LABELS, SEGMENT_LABELS
from .keys import Selection

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

    def view(self, name: str, originals: Views | None = None) -> np.ndarray:
        """A full-size view (VIEW_*), H x W x 3|4 uint8; ``originals`` make it cheaper."""
        if name not in self._views:
            pred, outcome = self.prediction, self.outcome
            self._views[name] = render_ablation_view(
                name, pred.image, pred.class_map, outcome.ablated_input,
                outcome.class_map_after, outcome.changed, originals, pred.colors)
        return self._views[name]

    @property
    def baseline_text(self) -> str:
        return BASELINE_LABELS.get(self.selection.baseline, self.selection.baseline)

    def details(self) -> str:
        n = len(self.selection.ids)
        how = ("answered from the ablation sweep, no forward pass" if self.outcome.from_cache
               else "one forward pass")
        kind = SEGMENT_LABELS.get(self.selection.kind, "drawn region").lower()
        return (f"{n} segment{'s' if n != 1 else ''} ({kind}), baseline "
                f"{self.baseline_text}; {how}, {self.seconds * 1000:.0f} ms")

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


def original_views(prediction: Prediction) -> Views:
    """The three views with nothing ablated (what ablate mode shows before a click)."""
    cm = prediction.class_map
    return ablation_views(prediction.image, cm, prediction.image, cm, prediction.colors)


def original_thumbnails(prediction: Prediction) -> Views:
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
    return AblationEntry(
        selection=selection, segments=segments, outcome=outcome, prediction=prediction,
        label=selection_label(prediction.categories, segments, selection.ids),
        summary=summary_line(prediction, outcome, segments),
        thumbnails=_thumbnail_views(prediction.image, prediction.class_map,
                                    outcome.ablated_input, outcome.class_map_after,
                                    prediction.colors),
        seconds=seconds)
