"""Ablate mode's state: what is selected, what has been computed, the history.

A selection (segment ids of one segments kind, one baseline) is answered

* from the history, when it was ablated before (no work at all);
* from the ablation sweep, at once, when it is one segment and the sweep for these
  segments and baseline exists: a table lookup, no forward pass;
* otherwise by one forward pass in a job on the "ablated" channel, so a newer click
  cancels an older one and only the latest selection reaches the screen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ...render import (
    ABLATION_VIEWS,
    VIEW_AFTER,
    VIEW_CHANGED,
    VIEW_INPUT,
    ablation_views,
    render_ablation_view,
    selection_outline,
    thumbnail_views,
)
from .choices import ABLATED, BASELINE_LABELS, SEGMENT_LABELS
from .runner import JobContext

if TYPE_CHECKING:  # the engine's ablation code imports torch: loaded when first used
    from ...engine.results import Prediction
    from ...engine.segments import Segments
    from ...engine.session import AblationOutcome
    from .document import Document
    from .keys import PredictKey

CHANNEL = "ablated"  # the document's ablated-input channel: one ablation job at a time
HISTORY_LIMIT = 30  # ablations kept per image (about 3 MB each at 948 x 640)
HISTORIES_KEPT = 4  # other predictions (model, image, size) whose history is kept
VIEW_LABELS = {
    VIEW_INPUT: "Ablated input",
    VIEW_AFTER: "New segmentation",
    VIEW_CHANGED: "Changed pixels",
}
HINT = "Click a segment to ablate it; Shift+click adds or removes one; Esc resets."
Views = dict[str, np.ndarray]


@dataclass(frozen=True)
class Selection:
    """What is ablated: segment ids of one segments kind, replaced by one baseline."""

    kind: str
    baseline: str
    ids: tuple[int, ...]


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


class _CacheOnly:
    """A job state that stops Session.ablate before any forward pass.

    The engine checks for cancellation right before its forward pass and never on the
    cached path, so with this state a click the sweep cannot answer raises Cancelled
    instead of running the model on the GUI thread.
    """

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        pass

    def is_cancelled(self) -> bool:
        return True


def original_views(prediction: Prediction) -> Views:
    """The three views with nothing ablated (what ablate mode shows before a click)."""
    cm = prediction.class_map
    return ablation_views(prediction.image, cm, prediction.image, cm, prediction.colors)


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
        thumbnails=thumbnail_views(prediction.image, prediction.class_map,
                                   outcome.ablated_input, outcome.class_map_after,
                                   prediction.colors),
        seconds=seconds)


class Ablation:
    """Ablate mode: the selection, the shown entry, the history, the view shown."""

    def __init__(self, document: Document) -> None:
        self.doc = document
        self.active = False
        self.view = VIEW_INPUT
        self.selection: Selection | None = None
        # on screen: the selection's result, or the previous one while it is computed
        self.shown: AblationEntry | None = None
        self._history: list[AblationEntry] = []  # oldest first
        self._history_key: PredictKey | None = None  # the prediction it belongs to
        # the histories of other predictions: back to a model or size, back to its history
        self._histories: dict[PredictKey, list[AblationEntry]] = {}
        self.hovered: int | None = None  # the segment under the cursor
        # the ablation steps, for undo and redo: what was ablated after each (None: the
        # original image), and which of them is shown
        self._steps: list[Selection | None] = [None]
        self._step = 0
        self._replaying = False
        self._regions = 0  # regions drawn so far (each is its own segments kind)
        self._previous_layer: str | None = None
        self._segments: dict[tuple[PredictKey | None, str], Segments] = {}
        self._originals: tuple[PredictKey | None, Views] | None = None
        self._original_thumbs: tuple[PredictKey | None, Views] | None = None
        self._outline: tuple[tuple[object, ...], np.ndarray] | None = None

    # -- questions -----------------------------------------------------------------------
    @property
    def history(self) -> list[AblationEntry]:
        return list(self._history)

    def is_computing(self) -> bool:
        return self.selection is not None and self.doc.jobs.is_running(CHANNEL) and (
            self.shown is None or self.shown.selection != self.selection)

    def can_reset(self) -> bool:
        return self.active and self.selection is not None

    # -- mode ----------------------------------------------------------------------------
    def set_active(self, on: bool) -> None:
        """Enter or leave ablate mode (leaving drops the selection; the history stays)."""
        on = bool(on)
        if on == self.active:
            return
        self.active = on
        doc = self.doc
        if on:
            self._previous_layer = doc.canvas_layer
            doc.set_canvas_layer(ABLATED)
        else:
            self._drop_selection(redraw=False)
            previous, self._previous_layer = self._previous_layer, None
            if doc.canvas_layer == ABLATED and previous is not None:
                doc.set_canvas_layer(previous)
            else:
                doc.schedule()
        doc.ablate_mode_changed.emit(on)

    def set_view(self, view: str) -> None:
        """Which result the canvas shows; shows the ablation layer."""
        if view not in VIEW_LABELS:
            raise ValueError(f"unknown view {view!r}")
        self.view = view
        if not self.active:
            self.set_active(True)
        elif self.doc.canvas_layer != ABLATED:
            self.doc.set_canvas_layer(ABLATED)
        else:
            self.doc.changed()

    def forget_history(self) -> None:
        """Drop the history (what is shown stays): later clicks are computed again."""
        self._history = [e for e in self._history if e is self.shown]

    def clear(self) -> None:
        """A new prediction: every selection belongs to the old one; its history is put
        aside (:meth:`restore` brings it back when that prediction is made again)."""
        self._drop_selection(redraw=False)
        if self._history_key is not None and self._history:
            self._histories.pop(self._history_key, None)
            self._histories[self._history_key] = self._history
            while len(self._histories) > HISTORIES_KEPT:
                self._histories.pop(next(iter(self._histories)))
        self._history = []
        self._history_key = None
        self.hovered = None
        self._steps, self._step = [None], 0
        self._segments.clear()
        self._originals = None
        self._original_thumbs = None
        self._outline = None

    def adopt_history(self, entries: list[AblationEntry]) -> None:
        """Entries computed elsewhere (a reopened session) become the history."""
        known = {e.selection for e in self._history}
        self._history.extend(e for e in entries if e.selection not in known)
        del self._history[:-HISTORY_LIMIT]
        self.doc.changed()

    def restore(self, key: PredictKey) -> None:
        """A prediction arrived: its history, if it was made before (another model or size
        and back)."""
        self._history_key = key
        self._history = self._histories.pop(key, [])

    # -- undo and redo ---------------------------------------------------------------------
    def _record(self, selection: Selection | None) -> None:
        if self._replaying or self._steps[self._step] == selection:
            return
        del self._steps[self._step + 1:]  # a new step forgets what could be redone
        self._steps.append(selection)
        self._step = len(self._steps) - 1

    def can_undo(self) -> bool:
        return self._step > 0

    def can_redo(self) -> bool:
        return self._step < len(self._steps) - 1

    def undo(self) -> bool:
        """Back to what was ablated before the last step (answered from the history)."""
        if not self.can_undo():
            return False
        self._step -= 1
        self._go(self._steps[self._step])
        return True

    def redo(self) -> bool:
        if not self.can_redo():
            return False
        self._step += 1
        self._go(self._steps[self._step])
        return True

    def _go(self, selection: Selection | None) -> None:
        self._replaying = True
        try:
            if selection is None:
                self._drop_selection()
            else:
                self.select(selection.ids, selection.kind, selection.baseline)
        finally:
            self._replaying = False
        self._regions = 0  # regions drawn so far (each is its own segments kind)

    def hover(self, x: int, y: int) -> None:
        """The cursor is over working pixel (x, y) ((-1, -1): off the image): the segment
        under it is outlined before any click."""
        pred = self.doc.prediction
        seg: int | None = None
        if self.active and pred is not None and x >= 0:
            h, w = pred.class_map.shape
            if 0 <= x < w and 0 <= y < h:
                seg = self.segments_for(self.doc.analysis.segments).at(x, y).id
        if seg != self.hovered:
            self.hovered = seg
            self.doc.changed()

    # -- selecting -----------------------------------------------------------------------
    def click(self, x: int, y: int, add: bool = False) -> None:
        """A click at working pixel (x, y): ablate its segment (``add``: toggle it)."""
        doc = self.doc
        pred = doc.prediction
        if pred is None or doc.session is None:
            return
        h, w = pred.class_map.shape
        if not (0 <= x < w and 0 <= y < h):
            return
        kind = doc.analysis.segments
        seg_id = self.segments_for(kind).at(x, y).id
        current = self.selection
        if add and current is not None and current.kind == kind:
            ids = set(current.ids) ^ {seg_id}
            if not ids:
                self.reset()
                return
        else:
            ids = {seg_id}
        self.select(ids)

    def select(self, segment_ids: set[int] | tuple[int, ...] | list[int],
               kind: str | None = None, baseline: str | None = None) -> None:
        """Ablate ``segment_ids`` together (of the chosen segments, with the chosen baseline)."""
        doc = self.doc
        if doc.prediction is None or doc.session is None:
            return
        choice = doc.analysis
        selection = Selection(kind or choice.segments, baseline or choice.baseline,
                              tuple(sorted(int(s) for s in segment_ids)))
        if not selection.ids:
            self.reset()
            return
        if not self.active:
            self.set_active(True)
        self.selection = selection
        self._record(selection)
        known = self._find(selection)
        if known is not None:
            self._cancel_job()
            self._show(known)
            doc.changed()
            return
        sweep = doc.sweep_for(selection.kind, selection.baseline)
        segments = sweep.segments if sweep is not None else self.segments_for(selection.kind)
        if sweep is not None and len(selection.ids) == 1:
            entry = self._from_sweep(selection, segments, sweep)
            if entry is not None:
                self._cancel_job()
                self._add(entry)
                return
        self._request(selection, segments, sweep)

    def reset(self) -> bool:
        """Back to the original image; False when there was nothing to reset."""
        if self.selection is None and self.shown is None:
            return False
        self._drop_selection()
        return True

    def show_history(self, row: int) -> None:
        """Show an earlier ablation again (no computation)."""
        if not 0 <= row < len(self._history):
            return
        entry = self._history[row]
        if not self.active:
            self.set_active(True)
        self._cancel_job()
        self.selection = entry.selection
        self._record(entry.selection)
        self._show(entry)
        self.doc.changed()

    def draw_region(self, tool: str, points: list[tuple[float, float]],
                    radius: float = 6.0) -> None:
        """Ablate a region the user drew in working pixels: a ``lasso`` (the polygon
        through ``points``) or a ``brush`` stroke (``radius`` pixels wide on each side)."""
        from PIL import Image, ImageDraw

        pred = self.doc.prediction
        if pred is None or self.doc.session is None or not points:
            return
        h, w = pred.class_map.shape
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
        inside = np.asarray(canvas, dtype=bool)
        if not inside.any():
            return
        from ...engine.segments import region_segments

        self._regions += 1
        kind = f"region-{self._regions}"
        self._segments[(self.doc.predict_key, kind)] = region_segments(pred.class_map, inside,
                                                                       kind)
        self.select((1,), kind=kind)

    def segments_for(self, kind: str) -> Segments:
        """The segments of the current prediction (made once per kind)."""
        doc = self.doc
        key = (doc.predict_key, kind)
        segments = self._segments.get(key)
        if segments is None:
            from ...engine.segments import make_segments

            assert doc.prediction is not None
            segments = make_segments(doc.prediction.class_map, kind)
            self._segments[key] = segments
        return segments

    def precompute(self) -> None:
        """Run the sweep for the chosen segments and baseline: later single clicks are free."""
        choice = self.doc.analysis
        self.doc.request_sweep(choice.segments, choice.baseline)

    def on_analysis_changed(self) -> None:
        """The segments or the baseline may have changed: follow them."""
        current, choice = self.selection, self.doc.analysis
        if current is None or not self.active:
            return
        if current.kind != choice.segments and not current.kind.startswith("region"):
            self.reset()  # the ids name other segments now
        elif current.baseline != choice.baseline:
            self.select(current.ids, current.kind)  # the same pixels, the new baseline

    # -- computing -----------------------------------------------------------------------
    def _find(self, selection: Selection) -> AblationEntry | None:
        return next((e for e in self._history if e.selection == selection), None)

    def _from_sweep(self, selection: Selection, segments: Segments,
                    sweep: object) -> AblationEntry | None:
        from ...engine.errors import Cancelled

        doc = self.doc
        assert doc.session is not None and doc.prediction is not None
        start = time.perf_counter()
        try:
            outcome = doc.session.ablate(segments, selection.ids, baseline=selection.baseline,
                                         sweep=sweep, state=_CacheOnly())  # type: ignore[arg-type]
        except Cancelled:
            return None  # the sweep cannot answer it: one forward pass, in a job
        entry = make_entry(selection, segments, outcome, doc.prediction,
                           time.perf_counter() - start)
        self.view_of(entry)  # the one the canvas shows now
        return entry

    def _request(self, selection: Selection, segments: Segments, sweep: object) -> None:
        doc = self.doc
        session, prediction = doc.session, doc.prediction
        assert session is not None and prediction is not None
        originals = (self._originals[1] if self._originals is not None
                     and self._originals[0] == doc.predict_key else None)
        key = ("ablate", doc.predict_key, selection)

        def job(state: JobContext) -> AblationEntry:
            start = time.perf_counter()
            outcome = session.ablate(segments, selection.ids, baseline=selection.baseline,
                                     sweep=sweep, state=state)  # type: ignore[arg-type]
            entry = make_entry(selection, segments, outcome, prediction,
                               time.perf_counter() - start)
            for view in ABLATION_VIEWS:  # drawn here, off the GUI thread
                entry.view(view, originals)
            return entry

        label = selection_label(prediction.categories, segments, selection.ids)
        doc.submit(CHANNEL, key, job, lambda entry: self._on_computed(key, entry),
                   label=f"Ablating {label}", force=True)
        doc.changed()

    def _on_computed(self, key: tuple[object, ...], entry: object) -> None:
        assert isinstance(entry, AblationEntry)
        if key[1] != self.doc.predict_key or entry.selection != self.selection:
            return  # an older selection or prediction: never shown
        self._add(entry, redraw=False)  # the document redraws after every job result

    def _add(self, entry: AblationEntry, redraw: bool = True) -> None:
        if self._find(entry.selection) is None:
            self._history.append(entry)
            del self._history[:-HISTORY_LIMIT]
        self._show(entry)
        if redraw:
            self.doc.changed()

    def _show(self, entry: AblationEntry | None) -> None:
        previous, self.shown = self.shown, entry
        if previous is not None and previous is not entry:
            previous.forget_views()  # full-size images are redrawn if shown again

    def _cancel_job(self) -> None:
        self.doc.cancel_channel(CHANNEL)

    def _drop_selection(self, redraw: bool = True) -> None:
        self._cancel_job()
        if self.selection is not None and self.active:
            self._record(None)
        self.selection = None
        self._show(None)
        if redraw:
            self.doc.changed()

    # -- drawing -------------------------------------------------------------------------
    def canvas_overlay(self) -> tuple[np.ndarray | None, str]:
        """What the ablation layer shows in ablate mode, and the caption under it."""
        if self.doc.prediction is None:
            return None, "Waiting for the model's prediction."
        entry = self.shown
        if entry is None:
            if self.is_computing():
                return None, "Ablating... (one forward pass)"
            overlay = self.original_views()[self.view]
            return (None if self.view == VIEW_INPUT else overlay), HINT
        caption = f"{VIEW_LABELS[self.view]}: {entry.summary}"
        if self.is_computing():
            caption = "Ablating the new selection... (showing the previous one)"
        return self.view_of(entry), caption

    def outline(self) -> tuple[tuple[object, ...] | None, np.ndarray | None]:
        """(key, RGBA) of the selected segments' outline (yellow) and of the segment under
        the cursor (white); (None, None) when neither."""
        selection, hovered = self.selection, self.hovered
        if (selection is None and hovered is None) or self.doc.prediction is None:
            return None, None
        kind = selection.kind if selection is not None else self.doc.analysis.segments
        chosen = selection.ids if selection is not None else ()
        key = (self.doc.predict_key, kind, chosen, hovered)
        if self._outline is None or self._outline[0] != key:
            ids = self.segments_for(kind).ids
            rgba = np.zeros(ids.shape + (4,), np.uint8)
            if hovered is not None and hovered not in chosen:
                rgba = selection_outline(ids, (hovered,), colour=(255, 255, 255))
            if chosen:
                selected = selection_outline(ids, chosen)
                drawn = selected[..., 3] > 0
                rgba[drawn] = selected[drawn]
            self._outline = (key, rgba)
        return self._outline

    def view_of(self, entry: AblationEntry) -> np.ndarray:
        """The entry's view that the canvas shows (the ablated input needs no drawing)."""
        if self.view == VIEW_INPUT:
            return entry.view(VIEW_INPUT)
        return entry.view(self.view, self.original_views())

    def original_thumbnails(self) -> Views:
        key = self.doc.predict_key
        if self._original_thumbs is None or self._original_thumbs[0] != key:
            pred = self.doc.prediction
            assert pred is not None
            self._original_thumbs = (key, thumbnail_views(pred.image, pred.class_map,
                                                          pred.image, pred.class_map,
                                                          pred.colors))
        return self._original_thumbs[1]

    def original_views(self) -> Views:
        key = self.doc.predict_key
        if self._originals is None or self._originals[0] != key:
            assert self.doc.prediction is not None
            self._originals = (key, original_views(self.doc.prediction))
        return self._originals[1]
