"""Each panel's view, presented when what it reads changes (napari's
``layer_to_controls``, in the document's terms).

A panel is registered once, with its view function and the widget method that shows it::

    presenters.add(evaluation_view, evaluate_panel.apply)

The view function says which topics it reads (``events.depends_on``); after every user
action or job result the document announces the topics that changed
(``Updates.announced``), and only the views that read one of them are computed again.
So the cursor moving onto another segment in ablate mode (``ablation.hovered``) presents
the canvas and the Ablation panel, nothing else; ``calls`` counts each view's runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .canvas_view import describe_pixel
from .drawings import Drawings
from .events import touches

if TYPE_CHECKING:
    from .document import Document

V = TypeVar("V")
ViewFn = Callable[["Document", Drawings], V]


@dataclass(frozen=True)
class Presented(Generic[V]):
    name: str
    view: ViewFn[V]
    show: Callable[[V], object]
    topics: frozenset[str]


class Presenters:
    """The registered views of one document, and the drawings they share."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.drawings = Drawings()
        self.calls: Counter[str] = Counter()  # how often each view was computed
        self._entries: list[Presented[Any]] = []
        doc.updates.announced.connect(self.present)

    def add(self, view: ViewFn[V], show: Callable[[V], object],
            name: str | None = None) -> None:
        """Register a panel: ``show(view(doc, drawings))`` now, and whenever a topic the
        view reads changes."""
        topics: frozenset[str] = getattr(view, "topics", frozenset())
        if not topics:
            raise ValueError(f"{view.__name__} does not say what it reads (depends_on)")
        entry = Presented(name or view.__name__.removesuffix("_view"), view, show, topics)
        self._entries.append(entry)
        with self.drawings.round():
            self._present(entry)

    def present(self, topics: frozenset[str] | None = None) -> None:
        """Present the views that read one of ``topics`` (None: every view)."""
        with self.drawings.round():
            for entry in list(self._entries):
                if topics is None or touches(topics, entry.topics):
                    self._present(entry)

    def _present(self, entry: Presented[Any]) -> None:
        self.calls[entry.name] += 1
        entry.show(entry.view(self.doc, self.drawings))

    def describe_pixel(self, x: int, y: int) -> str:
        """The status-bar text for image pixel (x, y) ((-1, -1): off the image)."""
        return describe_pixel(self.doc, self.drawings, x, y)
