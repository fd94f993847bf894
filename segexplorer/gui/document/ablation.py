"""Ablate mode's state: what is selected, what is shown, the history, the tools.

A selection (segment ids of one segments kind, one baseline) is answered

* from the history, when it was ablated before (no work at all);
* from the ablation sweep, at once, when it is one segment and the sweep for these
  segments and baseline exists: a table lookup, no forward pass;
* otherwise by one forward pass: the selection is what the planner sees
  (:meth:`AblationState.wanted`), so it asks for an ``Ablate`` job on the "ablated"
  channel; a newer click replaces it and only the latest selection reaches the screen.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ...render import ABLATION_VIEWS, VIEW_INPUT
from . import catalog
from .ablation_drawings import AblationDrawings
from .ablation_entries import (
    HINT,
    VIEW_LABELS,
    AblationEntry,
    make_entry,
    region_mask,
    selection_label,
)
from .choices import ABLATED
from .events import Field, State, Updates
from .jobtable import Job, JobTable
from .keys import AblationKey, PredictKey, Selection, SweepKey
from .requests import Ablate
from .runner import JobContext
from .states import AnalysisState, LayersState
from .store import ResultStore

if TYPE_CHECKING:  # the engine's ablation code imports torch: loaded when first used
    from ...engine.results import AblationSweep
    from ...engine.segments import Segments

__all__ = ["CHANNEL", "HINT", "VIEW_LABELS", "AblationEntry", "AblationState", "Selection"]

CHANNEL = "ablated"  # the ablated-input channel: one ablation job at a time
HISTORY_LIMIT = 30  # ablations kept per image (about 3 MB each at 948 x 640)
HISTORIES_KEPT = 4  # other predictions (model, image, size) whose history is kept
TOOLS = ("click", "brush", "lasso")


class AblationState(State):
    """Ablate mode: the selection, the shown entry, the history, the view shown, the
    tool that selects on the canvas and the brush's size."""

    name = "ablation"
    active = Field(False)  # set with set_active (it switches the canvas layer)
    view = Field(VIEW_INPUT)  # set with set_view
    selection: Field[Selection | None] = Field(None)
    # on screen: the selection's result, or the previous one while it is computed
    shown: Field[AblationEntry | None] = Field(None, identity=True)
    hovered: Field[int | None] = Field(None)  # the segment under the cursor
    tool = Field("click")  # set with set_tool (brush and lasso enter ablate mode)
    brush_radius = Field(6.0)  # working pixels on each side of a brush stroke
    #: (segments, baseline) of the sweep asked for, so that single clicks are lookups
    precompute: Field[tuple[str, str] | None] = Field(None)

    def __init__(self, store: ResultStore, jobs: JobTable, analysis: AnalysisState,
                 layers: LayersState, updates: Updates) -> None:
        super().__init__()
        self.store, self.jobs, self.analysis, self.layers = store, jobs, analysis, layers
        self.updates = updates
        self._history: list[AblationEntry] = []  # oldest first
        self._history_key: PredictKey | None = None  # the prediction it belongs to
        # the histories of other predictions: back to a model or size, back to its history
        self._histories: dict[PredictKey, list[AblationEntry]] = {}
        # the ablation steps, for undo and redo: what was ablated after each (None: the
        # original image), and which of them is shown
        self._steps: list[Selection | None] = [None]
        self._step = 0
        self._replaying = False
        self._regions = 0  # regions drawn so far (each is its own segments kind)
        self._previous_layer: str | None = None
        self._segments: dict[tuple[PredictKey | None, str], Segments] = {}
        self.drawings = AblationDrawings(self)  # what the canvas and the panel show
        self._stopped: AblationKey | None = None  # cancelled or failed: a click asks again
        jobs.register(Ablate, self._job, done=self._on_computed, cancelled=self._on_stopped,
                      failed=lambda request, *_: self._on_stopped(request))

    # -- questions -----------------------------------------------------------------------
    @property
    def history(self) -> list[AblationEntry]:
        return list(self._history)

    def is_computing(self) -> bool:
        return self.selection is not None and self.jobs.is_running(CHANNEL) and (
            self.shown is None or self.shown.selection != self.selection)

    def can_reset(self) -> bool:
        return self.active and self.selection is not None

    def wanted(self) -> AblationKey | None:
        """The selection the planner should ablate in a job (None: nothing to compute)."""
        selection, key = self.selection, self.store.predict_key
        if not self.active or selection is None or key is None:
            return None
        if self.shown is not None and self.shown.selection == selection:
            return None
        wanted = AblationKey(key, selection)
        return None if self._find(selection) is not None or wanted == self._stopped \
            else wanted

    def precompute_key(self) -> SweepKey | None:
        key = self.store.predict_key
        if self.precompute is None or key is None:
            return None
        return SweepKey(key, *self.precompute, "argmax")

    # -- mode, view and tools ------------------------------------------------------------
    def set_active(self, on: bool) -> None:
        """Enter or leave ablate mode (leaving drops the selection; the history stays)."""
        on = bool(on)
        if on == self.active:
            return
        with self.updates.batch():
            if on:
                self._previous_layer = self.layers.chosen
                self.update(active=True)
                self.layers.chosen = ABLATED
                return
            self._drop_selection()
            previous, self._previous_layer = self._previous_layer, None
            self.update(active=False, tool="click", hovered=None)
            if self.layers.chosen == ABLATED and previous is not None:
                self.layers.chosen = previous

    def set_view(self, view: str) -> None:
        """Which result the canvas shows; shows the ablation layer."""
        if view not in VIEW_LABELS:
            raise ValueError(f"unknown view {view!r}")
        with self.updates.batch():
            self.view = view
            if not self.active:
                self.set_active(True)
            elif self.layers.chosen != ABLATED:
                self.layers.chosen = ABLATED

    def set_tool(self, tool: str) -> None:
        """How the canvas selects: clicks on segments, or brush and lasso regions (these
        enter ablate mode)."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        with self.updates.batch():
            if tool != "click" and not self.active:
                self.set_active(True)
            self.tool = tool

    def precompute_sweep(self, segments: str | None = None,
                         baseline: str | None = None) -> None:
        """Ask for the sweep of these segments and baseline (the analysis's by default):
        later single clicks are then free."""
        self.jobs.unblock("sweep")
        wanted = (segments or self.analysis.segments, baseline or self.analysis.baseline)
        if self.update(precompute=wanted) == frozenset():
            self.touch("precompute")  # asked again (after a Cancel): try again

    # -- the history ----------------------------------------------------------------------
    def forget_history(self) -> None:
        """Drop the history (what is shown stays): later clicks are computed again."""
        self._history = [e for e in self._history if e is self.shown]
        self.touch("history")

    def clear(self) -> None:
        """A new prediction: every selection belongs to the old one; its history is put
        aside (:meth:`restore` brings it back when that prediction is made again)."""
        self._drop_selection()
        if self._history_key is not None and self._history:
            self._histories.pop(self._history_key, None)
            self._histories[self._history_key] = self._history
            while len(self._histories) > HISTORIES_KEPT:
                self._histories.pop(next(iter(self._histories)))
        self._history = []
        self._history_key = None
        self._steps, self._step = [None], 0
        self._segments.clear()
        self.update(hovered=None, precompute=None)
        self.touch("history")

    def adopt_history(self, entries: list[AblationEntry]) -> None:
        """Entries computed elsewhere (a reopened session) become the history."""
        known = {e.selection for e in self._history}
        self._history.extend(e for e in entries if e.selection not in known)
        del self._history[:-HISTORY_LIMIT]
        self.touch("history")

    def restore(self, key: PredictKey) -> None:
        """A prediction arrived: its history, if it was made before (another model or size
        and back)."""
        self._history_key = key
        self._history = self._histories.pop(key, [])
        self.touch("history")

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
        self.touch("steps")

    # -- selecting -----------------------------------------------------------------------
    def hover(self, x: int, y: int) -> None:
        """The cursor is over working pixel (x, y) ((-1, -1): off the image): the segment
        under it is outlined before any click."""
        pred = self.store.prediction
        seg: int | None = None
        if self.active and pred is not None and x >= 0:
            h, w = pred.class_map.shape
            if 0 <= x < w and 0 <= y < h:
                seg = self.segments_for(self.analysis.segments).at(x, y).id
        self.hovered = seg

    def click(self, x: int, y: int, add: bool = False) -> None:
        """A click at working pixel (x, y): ablate its segment (``add``: toggle it)."""
        pred = self.store.prediction
        if pred is None or self.store.session is None:
            return
        h, w = pred.class_map.shape
        if not (0 <= x < w and 0 <= y < h):
            return
        kind = self.analysis.segments
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
        if self.store.prediction is None or self.store.session is None:
            return
        selection = Selection(kind or self.analysis.segments, baseline or self.analysis.baseline,
                              tuple(sorted(int(s) for s in segment_ids)))
        if not selection.ids:
            self.reset()
            return
        with self.updates.batch():
            if not self.active:
                self.set_active(True)
            self._record(selection)
            entry = self._find(selection) or self._from_sweep(selection)
            if entry is not None:
                self.jobs.cancel(CHANNEL)  # an older selection's job: never shown
                self._add(entry)
                self._show(entry)
                self.selection = selection
                self.touch("steps")
                return
            self.jobs.unblock(CHANNEL)  # asked again: computed again, even after a failure
            self._stopped = None
            if self.update(selection=selection) == frozenset():
                self.touch("selection")
            self.touch("steps")

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
        with self.updates.batch():
            if not self.active:
                self.set_active(True)
            self.jobs.cancel(CHANNEL)
            self._record(entry.selection)
            self._show(entry)
            self.selection = entry.selection
            self.touch("steps")

    def draw_region(self, tool: str, points: list[tuple[float, float]],
                    radius: float | None = None) -> None:
        """Ablate a region the user drew in working pixels: a ``lasso`` (the polygon
        through ``points``) or a ``brush`` stroke (``radius`` pixels on each side; the
        brush's size by default)."""
        pred = self.store.prediction
        if pred is None or self.store.session is None or not points:
            return
        inside = region_mask(tool, points, pred.class_map.shape,
                             self.brush_radius if radius is None else radius)
        if not inside.any():
            return
        from ...engine.segments import region_segments

        self._regions += 1
        kind = f"region-{self._regions}"
        self._segments[(self.store.predict_key, kind)] = region_segments(pred.class_map,
                                                                         inside, kind)
        self.select((1,), kind=kind)

    def segments_for(self, kind: str) -> Segments:
        """The segments of the current prediction (made once per kind)."""
        key = (self.store.predict_key, kind)
        segments = self._segments.get(key)
        if segments is None:  # a multi-label model's: its label sets
            assert self.store.prediction is not None
            segments = self.store.prediction.segments(kind)
            self._segments[key] = segments
        return segments

    def follow_analysis(self) -> None:
        """The segments or the baseline may have changed: follow them."""
        current, choice = self.selection, self.analysis
        if current is None or not self.active:
            return
        if current.kind != choice.segments and not current.kind.startswith("region"):
            self.reset()  # the ids name other segments now
        elif current.baseline != choice.baseline:
            self.select(current.ids, current.kind)  # the same pixels, the new baseline

    # -- computing -----------------------------------------------------------------------
    def _find(self, selection: Selection) -> AblationEntry | None:
        return next((e for e in self._history if e.selection == selection), None)

    def _sweep_for(self, selection: Selection) -> AblationSweep | None:
        if selection.kind.startswith("region"):
            return None
        return self.store.sweep_for(selection.kind, selection.baseline)

    def _from_sweep(self, selection: Selection) -> AblationEntry | None:
        """One segment the sweep for its segments and baseline answers: a table lookup
        on this thread (None: the sweep cannot answer it)."""
        sweep, session, pred = self._sweep_for(selection), self.store.session, \
            self.store.prediction
        if (sweep is None or sweep.after_maps is None or len(selection.ids) != 1
                or session is None or pred is None
                or (pred.multilabel and sweep.after_label_sets is None)
                or sweep.baseline != catalog.baseline_label(selection.baseline)):
            return None
        start = time.perf_counter()
        outcome = session.ablate(sweep.segments, selection.ids, baseline=selection.baseline,
                                 sweep=sweep)
        entry = make_entry(selection, sweep.segments, outcome, pred,
                           time.perf_counter() - start)
        self.drawings.view_of(entry)  # the one the canvas shows now
        return entry

    def _job(self, request: Ablate) -> Job:
        session, prediction = self.store.session, self.store.prediction
        assert session is not None and prediction is not None
        selection = request.key.selection
        sweep = self._sweep_for(selection)
        segments = sweep.segments if sweep is not None else self.segments_for(selection.kind)
        originals = self.drawings.known_originals(request.key.predict)

        def job(state: JobContext) -> AblationEntry:
            start = time.perf_counter()
            outcome = session.ablate(segments, selection.ids, baseline=selection.baseline,
                                     sweep=sweep, state=state)
            entry = make_entry(selection, segments, outcome, prediction,
                               time.perf_counter() - start)
            for view in ABLATION_VIEWS:  # drawn here, off the GUI thread
                entry.view(view, originals)
            return entry

        label = selection_label(prediction.categories, segments, selection.ids)
        return Job(job, f"Ablating {label}")

    def _on_computed(self, request: Ablate, entry: AblationEntry) -> None:
        if request.key.predict != self.store.predict_key or entry.selection != self.selection:
            return  # an older selection or prediction: never shown
        self._add(entry)
        self._show(entry)

    def _on_stopped(self, request: Ablate) -> bool:
        self._stopped = request.key
        return False  # a failure is still said

    def _add(self, entry: AblationEntry) -> None:
        if self._find(entry.selection) is None:
            self._history.append(entry)
            del self._history[:-HISTORY_LIMIT]
            self.touch("history")

    def _show(self, entry: AblationEntry | None) -> None:
        previous = self.shown
        self.shown = entry
        if previous is not None and previous is not entry:
            previous.forget_views()  # full-size images are redrawn if shown again

    def _drop_selection(self) -> None:
        with self.updates.batch():
            self.jobs.cancel(CHANNEL)
            if self.selection is not None and self.active:
                self._record(None)
                self.touch("steps")
            self.selection = None
            self._show(None)
