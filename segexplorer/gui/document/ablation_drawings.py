"""What ablate mode draws: the ablation layer on the canvas and its caption, the outline
of the selected segments and of the one under the cursor, the original views and
thumbnails (each drawn once per prediction)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from ...render import VIEW_INPUT, selection_outline
from .ablation_entries import HINT, VIEW_LABELS, AblationEntry, Views, original_thumbnails
from .ablation_entries import original_views as _original_views
from .keys import PredictKey, Selection
from .states import AnalysisState, LayersState
from .store import ResultStore

if TYPE_CHECKING:
    from ...engine.segments import Segments


class Drawn(Protocol):
    """What the drawings read of the ablation state."""

    store: ResultStore
    analysis: AnalysisState
    layers: LayersState

    @property
    def shown(self) -> AblationEntry | None: ...

    @property
    def selection(self) -> Selection | None: ...

    @property
    def hovered(self) -> int | None: ...

    @property
    def view(self) -> str: ...

    def is_computing(self) -> bool: ...

    def segments_for(self, kind: str) -> Segments: ...


class AblationDrawings:
    """The drawings of one ablation state, kept while its prediction lasts."""

    def __init__(self, state: Drawn) -> None:
        self.state = state
        self._originals: tuple[tuple[PredictKey | None, frozenset[int]], Views] | None = None
        self._original_thumbs: tuple[PredictKey | None, Views] | None = None
        self._outline: tuple[tuple[object, ...], np.ndarray] | None = None

    def known_originals(self, key: PredictKey) -> Views | None:
        """The original views of prediction ``key``, if drawn already."""
        return self._originals[1] if self._originals is not None \
            and self._originals[0] == (key, frozenset()) else None

    def canvas_overlay(self) -> tuple[np.ndarray | None, str]:
        """What the ablation layer shows in ablate mode, and the caption under it."""
        if self.state.store.prediction is None:
            return None, "Waiting for the model's prediction."
        entry = self.state.shown
        if entry is None:
            if self.state.is_computing():
                return None, "Ablating... (one forward pass)"
            overlay = self.original_views()[self.state.view]
            return (None if self.state.view == VIEW_INPUT else overlay), HINT
        caption = f"{VIEW_LABELS[self.state.view]}: {entry.summary}"
        if self.state.is_computing():
            caption = "Ablating the new selection... (showing the previous one)"
        return self.view_of(entry), caption

    def outline(self) -> tuple[tuple[object, ...] | None, np.ndarray | None]:
        """(key, RGBA) of the selected segments' outline (yellow) and of the segment under
        the cursor (white); (None, None) when neither."""
        selection, hovered = self.state.selection, self.state.hovered
        if (selection is None and hovered is None) or self.state.store.prediction is None:
            return None, None
        kind = selection.kind if selection is not None else self.state.analysis.segments
        chosen = selection.ids if selection is not None else ()
        key = (self.state.store.predict_key, kind, chosen, hovered)
        if self._outline is None or self._outline[0] != key:
            ids = self.state.segments_for(kind).ids
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
        """The entry's view that the canvas shows (the ablated input needs no drawing;
        a multi-label model's new segmentation without the hidden classes)."""
        if self.state.view == VIEW_INPUT:
            return entry.view(VIEW_INPUT)
        return entry.view(self.state.view, self.original_views(), self._hidden())

    def _hidden(self) -> frozenset[int]:
        pred = self.state.store.prediction
        return self.state.layers.hidden_classes if pred is not None and pred.multilabel \
            else frozenset()

    def original_thumbnails(self) -> Views:
        key = self.state.store.predict_key
        if self._original_thumbs is None or self._original_thumbs[0] != key:
            assert self.state.store.prediction is not None
            self._original_thumbs = (key, original_thumbnails(self.state.store.prediction))
        return self._original_thumbs[1]

    def original_views(self) -> Views:
        key = (self.state.store.predict_key, self._hidden())
        if self._originals is None or self._originals[0] != key:
            assert self.state.store.prediction is not None
            self._originals = (key, _original_views(self.state.store.prediction, key[1]))
        return self._originals[1]
