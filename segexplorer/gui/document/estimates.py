"""What the chosen method will cost for the current image, before it runs: from the
method registry's cost and the prediction's own forward time; a method estimated above
``Document.auto_run_seconds`` waits for Compute."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...engine.methods import Cost, ImageFacts, get_method, method_cost

if TYPE_CHECKING:
    from .choices import AnalysisChoice
    from .document import Document


@dataclass(frozen=True)
class MethodEstimate:
    """What the chosen method will cost for this image, before it runs."""

    method: str
    cost: Cost
    seconds: float | None  # from the prediction's forward time; None before it
    automatic: bool  # cheap enough to start without asking


def estimate_method(doc: Document, analysis: AnalysisChoice) -> MethodEstimate | None:
    """The chosen method's cost for this image and every predicted class, before it
    runs (forward and backward passes, and a time from the prediction's own pass)."""
    pred, prepared = doc.prediction, doc.prepared
    if pred is None or prepared is None:
        return None
    info = get_method(analysis.method)
    segments = segment_count(doc, analysis.segments) if info.takes_segments else 0
    h, w = prepared.shape
    facts = ImageFacts(h, w, segments or 0, len(pred.present_classes))
    try:
        cost = method_cost(analysis.method, facts, analysis.method_options())
    except Exception:  # noqa: BLE001 - a bad option: the job will say which, in a line
        return None
    seconds = cost.seconds(pred.seconds) if pred.seconds > 0 else None
    automatic = seconds is None or seconds <= doc.auto_run_seconds
    return MethodEstimate(analysis.method, cost, seconds, automatic)


def segment_count(doc: Document, kind: str) -> int | None:
    """How many segments of ``kind`` the prediction has (computed once per kind)."""
    pred, key = doc.prediction, doc.predict_key
    if pred is None or key is None:
        return None
    if kind == "class":
        return len(pred.present_classes)
    if (key, kind) not in doc.segment_counts:
        from ...engine.segments import make_segments

        doc.segment_counts[(key, kind)] = make_segments(pred.class_map, kind).count
    return doc.segment_counts[(key, kind)]
