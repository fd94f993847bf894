"""The drawings the views share (``Drawings``): Captum's drawing of a map per key, the
segmentation's colours, the target's outline, the evaluation's randomisation strips,
kept while their prediction lasts; the map under the cursor; and the answers the views
of one presenting round share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ...render import composite_over, outline_rgba, render_attribution
from ...render.normalize import NormalizedAttr
from .choices import COLORMAP_VIEWS
from .labels import segmentation_drawing

if TYPE_CHECKING:
    from .document import Document

T = TypeVar("T")
RENDER_CACHE_SIZE = 24


@dataclass(frozen=True)
class Attribution:
    """A map to draw: H x W values, the colour bar's caption, a drawing-cache key."""

    values: np.ndarray
    caption: str
    key: tuple[Any, ...]


class Drawings:
    """The drawings the views share, kept per prediction, and the map under the cursor."""

    def __init__(self) -> None:
        self._render: dict[tuple[Any, ...], tuple[np.ndarray, NormalizedAttr]] = {}
        self.strips: dict[tuple[Any, ...], Any] = {}  # the evaluation's randomisation strips
        self._segmap: tuple[object, np.ndarray] | None = None
        self._outline: tuple[object, np.ndarray] | None = None
        self._predict_key: object = None
        self.current_attr: np.ndarray | None = None  # the map under the cursor's values
        # answers shared by the views of one presenting round (None: not in a round)
        self._round: dict[str, Any] | None = None

    @contextmanager
    def round(self) -> Iterator[None]:
        """The views presented together share their common answers (the layer's
        content, the explanation's status): computed once, while nothing changes."""
        self._round = {}
        try:
            yield
        finally:
            self._round = None

    def shared(self, name: str, compute: Callable[[], T]) -> T:
        """``compute()``, once per presenting round (every time outside one)."""
        if self._round is None:
            return compute()
        if name not in self._round:
            self._round[name] = compute()
        value: T = self._round[name]
        return value

    def follow(self, doc: Document) -> None:
        if doc.store.predict_key != self._predict_key:  # drawings of an older prediction
            self._predict_key = doc.store.predict_key
            self._render.clear()

    def render(self, doc: Document, attribution: Attribution, view: str, sign: str,
               outlier: float) -> tuple[np.ndarray, NormalizedAttr]:
        """Captum's drawing of ``attribution`` over the working image (cached), with the
        chosen colour map where the drawing uses one."""
        self.follow(doc)
        cmap = doc.view.colormap if view in COLORMAP_VIEWS else ""
        key = (attribution.key, view, sign, outlier, cmap)
        hit = self._render.get(key)
        if hit is not None:
            return hit
        assert doc.image.prepared is not None
        rendered = render_attribution(attribution.values, doc.image.prepared.rgb, view, sign,
                                      outlier, cmap=cmap or None)
        rgba = rendered.rgba
        if view == "alpha_scaling":  # Captum draws it over the white axes background
            rgba = composite_over(rgba)
        if len(self._render) >= RENDER_CACHE_SIZE:
            self._render.pop(next(iter(self._render)))
        self._render[key] = (rgba, rendered.normalized)
        return rgba, rendered.normalized

    def shown(self, doc: Document, attribution: Attribution) -> tuple[np.ndarray,
                                                                       NormalizedAttr]:
        """The chosen drawing of ``attribution`` (view, sign, outlier)."""
        view = doc.view
        return self.render(doc, attribution, view.view, view.sign, view.outlier)

    def segmap(self, doc: Document) -> np.ndarray | None:
        """The segmentation layer's drawing: one colour per pixel, or a multi-label
        model's class layers and outlines without the hidden classes."""
        pred = doc.store.prediction
        if pred is None:
            return None
        hidden = doc.layers.hidden_classes if pred.multilabel else frozenset()
        key = (doc.store.predict_key, hidden)
        if self._segmap is None or self._segmap[0] != key:
            self._segmap = (key, segmentation_drawing(pred, doc.store.class_colors(), hidden))
        return self._segmap[1]

    def target_outline(self, doc: Document, target: int) -> np.ndarray:
        pred = doc.store.prediction
        assert pred is not None
        key = (doc.store.predict_key, target)
        if self._outline is None or self._outline[0] != key:
            self._outline = (key, outline_rgba(pred.mask(target)))
        return self._outline[1]
