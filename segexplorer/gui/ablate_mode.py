"""Ablate mode: click a segment and see at once what the model does without it.

The controller keeps what the user selected (a :class:`Selection`: segment ids, the
segments kind and the baseline) and what has been computed for it (an
:class:`AblationEntry`, also the history of this image). A selection is answered

* from the history, when it was ablated before (no work at all);
* from the ablation sweep, on the main thread, when it is one segment and the sweep
  for these segments and baseline exists: a table lookup, no forward pass;
* otherwise by one forward pass in a worker on the window's "ablated" job channel, so a
  newer click cancels an older one and only the latest selection reaches the screen.

The window draws: it asks :meth:`AblateController.canvas_overlay` and
:meth:`AblateController.outline` while in ablate mode, and calls :meth:`refresh` after
each redraw so that the panel follows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QToolButton

from ..engine.errors import Cancelled
from ..render import changed_pixels_map, segmentation_overlay
from .ablation_panel import (
    HINT,
    VIEW_AFTER,
    VIEW_CHANGED,
    VIEW_INPUT,
    VIEW_LABELS,
    AblationPanel,
)
from .options import ABLATED, BASELINE_LABELS, SEGMENT_LABELS

if TYPE_CHECKING:  # the engine's ablation code imports torch: loaded when first used
    from ..engine.results import Prediction
    from ..engine.segments import Segments
    from ..engine.session import AblationOutcome

CHANNEL = "ablated"  # the window's ablated-input channel: one ablation job at a time
SEGMENTATION_OPACITY = 0.6  # the new segmentation over the ablated input
OUTLINE_COLOUR = (255, 214, 0)
THUMB_SOURCE_PX = 160  # thumbnails are drawn from about this many pixels a side
HISTORY_LIMIT = 30  # ablations kept per image (about 3 MB each at 948 x 640)


@dataclass(frozen=True)
class Selection:
    """What is ablated: segment ids of one segments kind, replaced by one baseline."""

    kind: str
    baseline: str
    ids: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class AblationEntry:
    """One computed ablation with everything the window shows for it.

    The full-size views are drawn when first shown (a click must not pay for drawing
    images nobody looks at); the thumbnails are drawn at once, from every few pixels.
    """

    selection: Selection
    segments: Segments
    outcome: AblationOutcome
    prediction: Prediction = field(repr=False)
    label: str  # the segments' names, e.g. 'person + dog'
    summary: str  # e.g. 'person -83 %; 12 % of pixels changed class'
    thumbnails: dict[str, np.ndarray] = field(repr=False)  # VIEW_* -> small RGB(A)
    seconds: float = 0.0  # until the engine answered
    _views: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def forget_views(self) -> None:
        self._views.clear()

    def view(self, name: str, originals: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """A full-size view (VIEW_*), H x W x 3|4 uint8; ``originals`` make it cheaper."""
        if name not in self._views:
            self._views[name] = render_view(name, self.prediction, self.outcome, originals)
        return self._views[name]

    @property
    def baseline_text(self) -> str:
        return BASELINE_LABELS.get(self.selection.baseline, self.selection.baseline)

    def details(self) -> str:
        n = len(self.selection.ids)
        how = ("answered from the ablation sweep, no forward pass" if self.outcome.from_cache
               else "one forward pass")
        return (f"{n} segment{'s' if n != 1 else ''} ({SEGMENT_LABELS[self.selection.kind].lower()})"
                f", baseline {self.baseline_text}; {how}, {self.seconds * 1000:.0f} ms")

    def history_text(self) -> str:
        return f"{self.label}  [{self.selection.baseline}]\n{self.summary}"


class _CacheOnly:
    """A job state that stops Session.ablate before any forward pass.

    The engine checks for cancellation right before its forward pass and never on the
    cached path, so with this state a click the sweep cannot answer raises Cancelled
    instead of running the model on the main thread.
    """

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        pass

    def is_cancelled(self) -> bool:
        return True


def _views_of(image: np.ndarray, before: np.ndarray, ablated: np.ndarray,
              after: np.ndarray) -> dict[str, np.ndarray]:
    return {
        VIEW_INPUT: ablated,
        VIEW_AFTER: segmentation_overlay(ablated, after, SEGMENTATION_OPACITY),
        VIEW_CHANGED: changed_pixels_map(before, after, image),
    }


def original_views(prediction) -> dict[str, np.ndarray]:
    """The three views with nothing ablated (what ablate mode shows before a click)."""
    cm = prediction.class_map
    return _views_of(prediction.image, cm, prediction.image, cm)


def render_view(name: str, prediction, outcome: AblationOutcome,
                originals: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """One result image: the ablated input, the new segmentation over it, or the changed
    pixels (:func:`segexplorer.render.changed_pixels_map`).

    With ``originals`` (:func:`original_views` of the same prediction) only the pixels
    that differ from the original are drawn again: both drawings are per pixel, so the
    result is the same array, for a fraction of the time when a few segments change.
    """
    image, before = prediction.image, prediction.class_map
    ablated, after = outcome.ablated_input, outcome.class_map_after
    if name == VIEW_INPUT:
        return ablated
    if originals is None or not _drawn_per_pixel(ablated):
        return _views_of(image, before, ablated, after)[name]
    if name == VIEW_CHANGED:
        changed = originals[VIEW_CHANGED].copy()
        mask = outcome.changed
        if mask.any():  # every one of these pixels is drawn in the highlight colour
            changed[mask] = changed_pixels_map(before[mask][None], after[mask][None],
                                               image[mask][None])[0]
        return changed
    differs = outcome.changed | np.any(ablated != image, axis=-1)
    if differs.mean() > 0.5:  # indexing most of the image costs more than drawing it
        return segmentation_overlay(ablated, after, SEGMENTATION_OPACITY)
    overlay = originals[VIEW_AFTER].copy()
    if differs.any():
        part = ablated[differs][None]
        if not _drawn_per_pixel(part):
            return segmentation_overlay(ablated, after, SEGMENTATION_OPACITY)
        overlay[differs] = segmentation_overlay(part, after[differs][None],
                                                SEGMENTATION_OPACITY)[0]
    return overlay


def _drawn_per_pixel(rgb: np.ndarray) -> bool:
    # Captum's drawing rescales a whole image whose maximum is <= 1; a uint8 image above
    # that is drawn pixel by pixel, so a part of it is drawn as in the whole.
    return rgb.dtype == np.uint8 and rgb.size > 0 and int(rgb.max()) > 1


def thumbnail_views(image: np.ndarray, before: np.ndarray, ablated: np.ndarray,
                    after: np.ndarray) -> dict[str, np.ndarray]:
    """The three views drawn from every few pixels: enough for a thumbnail, and cheap."""
    step = max(1, min(image.shape[:2]) // THUMB_SOURCE_PX)
    sub = np.s_[::step, ::step]
    return {k: np.ascontiguousarray(v) for k, v in
            _views_of(image[sub], before[sub], ablated[sub], after[sub]).items()}


def selection_label(categories, segments: Segments, segment_ids) -> str:
    """engine.ablation.selection_label, imported when first needed (it imports torch)."""
    from ..engine.ablation import selection_label as label

    return label(categories, segments, segment_ids)


def make_entry(selection: Selection, segments: Segments, outcome: AblationOutcome,
               prediction, seconds: float) -> AblationEntry:
    """Everything shown for one ablation (``seconds``: until the engine answered)."""
    from ..engine.ablation import summary_line

    after = outcome.class_map_after
    if after.size and after.max() < 256:  # the history keeps many: 1 byte a pixel, not 8
        outcome = replace(outcome, class_map_after=after.astype(np.uint8))
    return AblationEntry(
        selection=selection, segments=segments, outcome=outcome, prediction=prediction,
        label=selection_label(prediction.categories, segments, selection.ids),
        summary=summary_line(prediction, outcome, segments),
        thumbnails=thumbnail_views(prediction.image, prediction.class_map,
                                   outcome.ablated_input, outcome.class_map_after),
        seconds=seconds)


def selection_outline(ids: np.ndarray, selected, colour=OUTLINE_COLOUR,
                      halo=(0, 0, 0)) -> np.ndarray:
    """RGBA: the boundary of each selected segment (also where two selected ones meet)."""
    inside = np.isin(ids, np.asarray(list(selected)))
    edge = np.zeros(ids.shape, dtype=bool)
    vertical = ids[1:, :] != ids[:-1, :]
    horizontal = ids[:, 1:] != ids[:, :-1]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[[0, -1], :] = True  # close the outline along the image's border
    edge[:, [0, -1]] = True
    edge &= inside
    ring = np.zeros_like(edge)
    ring[1:, :] |= edge[:-1, :]
    ring[:-1, :] |= edge[1:, :]
    ring[:, 1:] |= edge[:, :-1]
    ring[:, :-1] |= edge[:, 1:]
    ring &= ~edge
    out = np.zeros(ids.shape + (4,), dtype=np.uint8)
    out[ring, :3] = halo
    out[ring, 3] = 150
    out[edge, :3] = colour
    out[edge, 3] = 255
    return out


class AblateController(QObject):
    """Ablate mode's state and actions; owns the ablation panel."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.panel = AblationPanel()
        self.action = QAction("&Ablate Mode", window)
        self.action.setCheckable(True)
        self.action.setIconText("Ablate")  # the canvas bar's button
        self.action.setShortcut(QKeySequence("A"))
        tip = "Ablate mode (A): click a segment to see what the model does without it"
        self.action.setToolTip(tip)
        self.action.setStatusTip(tip)
        self.action.toggled.connect(self.set_active)
        self.reset_action = QAction("&Reset Ablation", window)
        self.reset_action.setStatusTip("Back to the original image (Esc in ablate mode)")
        self.reset_action.triggered.connect(lambda *_: self.reset())
        self.export_action = QAction("Export A&blation...", window)
        self.export_action.setStatusTip("The shown ablation's files, as 'segexplorer "
                                        "ablate' writes them")
        self.export_action.triggered.connect(lambda *_: self.choose_export())

        self._active = False
        self._previous_layer: str | None = None
        self._view = VIEW_INPUT
        self._selection: Selection | None = None
        # on screen: the selection's result, or the previous one while it is computed
        self._shown: AblationEntry | None = None
        self._history: list[AblationEntry] = []  # oldest first
        self._segments: dict[tuple, Segments] = {}
        self._originals: tuple[tuple, dict] | None = None  # full size, made when needed
        self._original_thumbs: tuple[tuple, dict] | None = None
        self._outline: tuple[tuple, np.ndarray] | None = None
        self._painted: tuple | None = None  # what the panel shows, to skip redundant work

        panel = self.panel
        panel.segments_chosen.connect(window.explain_panel.set_segments)
        panel.baseline_chosen.connect(window.explain_panel.set_baseline)
        panel.view_chosen.connect(self.set_view)
        panel.reset_requested.connect(self.reset)
        panel.export_requested.connect(self.choose_export)
        panel.export_history_requested.connect(self.choose_export_history)
        panel.history_chosen.connect(self.show_history)
        panel.precompute_requested.connect(self.precompute)
        window.explain_panel.analysis_changed.connect(self._on_analysis_choice)
        choice = window.explain_panel.analysis()
        panel.set_choice(choice.segments, choice.baseline)

    def make_tool_button(self, parent) -> QToolButton:
        button = QToolButton(parent)
        button.setObjectName("ablateModeButton")
        button.setDefaultAction(self.action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        return button

    # ======================================================================= state
    @property
    def active(self) -> bool:
        return self._active

    @property
    def selection(self) -> Selection | None:
        return self._selection

    @property
    def shown(self) -> AblationEntry | None:
        """The ablation on screen (None: the original)."""
        return self._shown

    @property
    def history(self) -> list[AblationEntry]:
        return list(self._history)

    @property
    def view(self) -> str:
        return self._view

    def is_computing(self) -> bool:
        return self._selection is not None and self.window.is_running(CHANNEL) and (
            self._shown is None or self._shown.selection != self._selection)

    def can_reset(self) -> bool:
        return self._active and self._selection is not None

    # ======================================================================= mode
    def set_active(self, on: bool) -> None:
        """Enter or leave ablate mode (leaving drops the selection; the history stays)."""
        on = bool(on)
        if on == self._active:
            return
        self._active = on
        self.action.setChecked(on)
        window = self.window
        if on:
            self._previous_layer = window.layer
            window.canvas.set_click_cursor(Qt.CursorShape.PointingHandCursor)
            dock = getattr(window, "ablation_dock", None)
            if dock is not None:
                dock.show()
                dock.raise_()
            window.hover_label.setText(HINT)
            window.set_layer(ABLATED)
        else:
            self._drop_selection()
            window.canvas.set_click_cursor(Qt.CursorShape.CrossCursor)
            previous, self._previous_layer = self._previous_layer, None
            if window.layer == ABLATED and previous is not None:
                window.set_layer(previous)
            else:
                window.schedule()

    def set_view(self, view: str) -> None:
        """Which result the canvas shows (the thumbnails choose); shows it on the canvas."""
        if view not in VIEW_LABELS:
            raise ValueError(f"unknown view {view!r}")
        self._view = view
        self.panel.set_view(view)
        if not self._active:
            self.set_active(True)  # shows the ablation layer
        elif self.window.layer != ABLATED:
            self.window.set_layer(ABLATED)
        else:
            self.window.refresh_view()

    def clear(self) -> None:
        """A new prediction: every selection and ablation belongs to the old one."""
        self._drop_selection(redraw=False)
        self._history.clear()
        self._segments.clear()
        self._originals = None
        self._original_thumbs = None
        self._outline = None
        self._painted = None

    # ======================================================================= selecting
    def click(self, x: int, y: int, add: bool = False) -> None:
        """A click at working pixel (x, y): ablate its segment (``add``: toggle it)."""
        window = self.window
        pred = window.prediction
        if pred is None or window.session is None:
            return
        h, w = pred.class_map.shape
        if not (0 <= x < w and 0 <= y < h):
            return
        kind = window.analysis_choice.segments
        seg_id = self.segments_for(kind).at(x, y).id
        current = self._selection
        if add and current is not None and current.kind == kind:
            ids = set(current.ids) ^ {seg_id}
            if not ids:
                self.reset()
                return
        else:
            ids = {seg_id}
        self.select(ids)

    def select(self, segment_ids, kind: str | None = None, baseline: str | None = None
               ) -> None:
        """Ablate ``segment_ids`` together (of the chosen segments, with the chosen baseline)."""
        window = self.window
        if window.prediction is None or window.session is None:
            return
        choice = window.analysis_choice
        selection = Selection(kind or choice.segments, baseline or choice.baseline,
                              tuple(sorted(int(s) for s in segment_ids)))
        if not selection.ids:
            self.reset()
            return
        if not self._active:
            self.set_active(True)
        self._selection = selection
        known = self._find(selection)
        if known is not None:
            self._cancel_job()
            self._show(known)
            window.refresh_view()
            return
        sweep = window.sweep_for(selection.kind, selection.baseline)
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
        if self._selection is None and self._shown is None:
            return False
        self._drop_selection()
        return True

    def show_history(self, row: int) -> None:
        """Show an earlier ablation again (no computation)."""
        if not 0 <= row < len(self._history):
            return
        entry = self._history[row]
        if not self._active:
            self.set_active(True)
        self._cancel_job()
        self._selection = entry.selection
        self._show(entry)
        self.window.refresh_view()

    def segments_for(self, kind: str) -> Segments:
        """The segments of the current prediction (made once per kind)."""
        window = self.window
        key = (window.predict_key, kind)
        segments = self._segments.get(key)
        if segments is None:
            from ..engine.segments import make_segments

            segments = make_segments(window.prediction.class_map, kind)
            self._segments[key] = segments
        return segments

    # ======================================================================= computing
    def _find(self, selection: Selection) -> AblationEntry | None:
        return next((e for e in self._history if e.selection == selection), None)

    def _from_sweep(self, selection, segments, sweep) -> AblationEntry | None:
        window = self.window
        start = time.perf_counter()
        try:
            outcome = window.session.ablate(segments, selection.ids, selection.baseline,
                                            sweep=sweep, state=_CacheOnly())
        except Cancelled:
            return None  # the sweep cannot answer it: one forward pass, in a worker
        entry = make_entry(selection, segments, outcome, window.prediction,
                           time.perf_counter() - start)
        self._view_of(entry)  # the one the canvas shows now
        return entry

    def _request(self, selection: Selection, segments: Segments, sweep) -> None:
        window = self.window
        session, prediction = window.session, window.prediction
        originals = self._originals[1] if self._originals is not None and \
            self._originals[0] == window.predict_key else None
        key = ("ablate", window.predict_key, selection)

        def job(state):
            start = time.perf_counter()
            outcome = session.ablate(segments, selection.ids, selection.baseline,
                                     sweep=sweep, state=state)
            entry = make_entry(selection, segments, outcome, prediction,
                               time.perf_counter() - start)
            for view in VIEW_LABELS:  # drawn here, off the main thread
                entry.view(view, originals)
            return entry

        label = selection_label(prediction.categories, segments, selection.ids)
        window._request(CHANNEL, key, job, partial(self._on_computed, key),
                        label=f"Ablating {label}", force=True)
        window.refresh_view()

    def _on_computed(self, key: tuple, entry: AblationEntry) -> None:
        if key[1] != self.window.predict_key or entry.selection != self._selection:
            return  # an older selection or prediction: never shown
        self._add(entry, redraw=False)  # the window redraws after every job result

    def _add(self, entry: AblationEntry, redraw: bool = True) -> None:
        if self._find(entry.selection) is None:
            self._history.append(entry)
            del self._history[:-HISTORY_LIMIT]
        self._show(entry)
        if redraw:
            self.window.refresh_view()

    def _show(self, entry: AblationEntry | None) -> None:
        previous, self._shown = self._shown, entry
        if previous is not None and previous is not entry:
            previous.forget_views()  # full-size images are redrawn if shown again

    def _cancel_job(self) -> None:
        self.window.cancel_channel(CHANNEL)

    def _drop_selection(self, redraw: bool = True) -> None:
        self._cancel_job()
        self._selection = None
        self._show(None)
        if redraw:
            self.window.refresh_view()

    def precompute(self) -> None:
        """Run the sweep for the chosen segments and baseline: later single clicks are free."""
        choice = self.window.analysis_choice
        self.window.request_sweep(choice.segments, choice.baseline)

    def _on_analysis_choice(self, choice) -> None:
        self.panel.set_choice(choice.segments, choice.baseline)
        current = self._selection
        if current is None or not self._active:
            self.refresh()
            return
        if current.kind != choice.segments:
            self.reset()  # the ids name other segments now
        elif current.baseline != choice.baseline:
            self.select(current.ids)  # the same segments, replaced by the new baseline
        else:
            self.refresh()

    # ======================================================================= drawing
    def canvas_overlay(self) -> tuple[np.ndarray | None, str]:
        """What the ablation layer shows in ablate mode, and the caption under it."""
        window = self.window
        if window.prediction is None:
            return None, "Waiting for the model's prediction."
        entry = self._shown
        if entry is None:
            if self.is_computing():
                return None, "Ablating... (one forward pass)"
            overlay = self._original_views()[self._view]
            return (None if self._view == VIEW_INPUT else overlay), HINT
        caption = f"{VIEW_LABELS[self._view]}: {entry.summary}"
        if self.is_computing():
            caption = "Ablating the new selection... (showing the previous one)"
        return self._view_of(entry), caption

    def outline(self) -> tuple[tuple | None, np.ndarray | None]:
        """(key, RGBA) of the selected segments' outline; (None, None) when none."""
        selection = self._selection
        if selection is None or self.window.prediction is None:
            return None, None
        key = (self.window.predict_key, selection.kind, selection.ids)
        if self._outline is None or self._outline[0] != key:
            self._outline = (key, selection_outline(self.segments_for(selection.kind).ids,
                                                    selection.ids))
        return self._outline

    def _view_of(self, entry: AblationEntry) -> np.ndarray:
        """The entry's view that the canvas shows (the ablated input needs no drawing)."""
        if self._view == VIEW_INPUT:
            return entry.view(VIEW_INPUT)
        return entry.view(self._view, self._original_views())

    def _original_thumbnails(self) -> dict[str, np.ndarray]:
        key = self.window.predict_key
        if self._original_thumbs is None or self._original_thumbs[0] != key:
            pred = self.window.prediction
            self._original_thumbs = (key, thumbnail_views(pred.image, pred.class_map,
                                                          pred.image, pred.class_map))
        return self._original_thumbs[1]

    def _original_views(self) -> dict[str, np.ndarray]:
        key = self.window.predict_key
        if self._originals is None or self._originals[0] != key:
            self._originals = (key, original_views(self.window.prediction))
        return self._originals[1]

    def refresh(self) -> None:
        """Bring the panel up to date (cheap when nothing changed)."""
        window = self.window
        pred = window.prediction
        choice = window.analysis_choice
        sweep = window.sweep_for(choice.segments, choice.baseline) if pred is not None \
            else None
        computing = self.is_computing()
        state = (self._active, window.predict_key, id(self._shown), self._selection, computing,
                 len(self._history), id(sweep), window.is_running("sweep"), self._view,
                 choice.segments, choice.baseline)
        if state == self._painted:
            return
        self._painted = state
        panel = self.panel
        panel.set_view(self._view)
        self.export_action.setEnabled(self._shown is not None)
        self.reset_action.setEnabled(self._selection is not None)
        if pred is None:
            panel.show_nothing()
            panel.set_history([], None)
            panel.set_sweep_status("Open an image to ablate its segments.", False)
            return
        entry = self._shown
        if entry is None:
            panel.show_nothing(self._original_thumbnails())
        else:
            colors = pred.colors
            emphasis = {s.class_index for s in entry.segments.info
                        if s.id in entry.selection.ids}
            panel.show_result(entry.summary, entry.details(), entry.thumbnails, pred.categories,
                              colors, entry.outcome.before, entry.outcome.after, emphasis)
        if computing:
            label = selection_label(pred.categories, self.segments_for(self._selection.kind),
                                    self._selection.ids)
            panel.show_status(f"Ablating {label}...", "One forward pass in the background; "
                              "a newer click replaces it.")
        elif self._selection is not None and (entry is None
                                              or entry.selection != self._selection):
            panel.show_status("Not ablated", "The ablation was cancelled or failed: click "
                              "the segment again to retry.")
        current = self._history.index(entry) if entry is not None and entry in self._history \
            else None
        panel.set_history([(e.history_text(), e.details()) for e in self._history], current)
        if sweep is not None:
            panel.set_sweep_status("Single-segment clicks are answered from the ablation "
                                   "sweep at once (no forward pass).", False)
        elif window.is_running("sweep"):
            panel.set_sweep_status("The ablation sweep is running: single-segment clicks "
                                   "will then be answered at once.", False)
        else:
            panel.set_sweep_status("Each click runs one forward pass. Precompute every "
                                   "single-segment click (one forward pass per segment)?",
                                   True)

    # ======================================================================= export
    def choose_export(self) -> None:
        if self._shown is None:
            return
        folder = QFileDialog.getExistingDirectory(self.window, "Export ablation into folder",
                                                  self.window.prefs.last_folder)
        if folder:
            self.export_ablation(folder)

    def export_ablation(self, folder: str | Path, entry: AblationEntry | None = None) -> None:
        """Write what ``segexplorer ablate`` writes for the shown (or given) ablation."""
        entry = entry or self._shown
        window = self.window
        if entry is None or window.session is None:
            return
        session, folder = window.session, Path(folder)

        def job(state):
            from ..export.ablation import write_ablation

            return write_ablation(folder, session, entry.segments, entry.outcome)

        def done(paths):
            window.prefs.last_folder = str(folder)
            window._saved(f"Exported {len(paths)} files to {folder}", folder)

        window._request("export_ablation", (str(folder), id(entry)), job, done,
                        label="Exporting the ablation", uses_model=False, force=True)

    def choose_export_history(self) -> None:
        if not self._history:
            return
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Export ablation history",
            str(Path(self.window.prefs.last_folder) / "ablation_history.json"),
            "JSON (*.json)")
        if path:
            self.export_history(path if path.lower().endswith(".json") else path + ".json")

    def export_history(self, path: str | Path) -> None:
        """Every ablation of this image, as ``segexplorer ablate`` reports each, in one JSON."""
        window = self.window
        if not self._history or window.session is None:
            return
        session, entries, path = window.session, list(self._history), Path(path)
        source = window.image_label()

        def job(state):
            from ..export import save_json
            from ..export.ablation import ablation_report

            reports = []
            for entry in entries:
                report = ablation_report(session, entry.segments, entry.outcome)
                report["label"] = entry.label
                reports.append(report)
            return save_json(path, {"image": source, "ablations": reports})

        window._request("export_ablation", (str(path), len(entries)), job,
                        lambda p: window._saved(f"Saved {len(entries)} ablations to "
                                                f"{Path(p).name}", p),
                        label="Exporting the ablation history", uses_model=False, force=True)
