"""What the chosen method will cost for the current image, before it runs: from the
method registry's cost and the prediction's own forward time; a method estimated above
``AnalysisState.auto_run_seconds`` waits for Compute."""

from __future__ import annotations

from dataclasses import dataclass

from ...engine.methods import Cost, ImageFacts, get_method, method_cost
from .choices import AnalysisChoice
from .store import ResultStore


@dataclass(frozen=True)
class MethodEstimate:
    """What the chosen method will cost for this image, before it runs."""

    method: str
    cost: Cost
    seconds: float | None  # from the prediction's forward time; None before it
    automatic: bool  # cheap enough to start without asking


def estimate_method(store: ResultStore, analysis: AnalysisChoice,
                    auto_run_seconds: float) -> MethodEstimate | None:
    """The chosen method's cost for this image and every predicted class, before it
    runs (forward and backward passes, and a time from the prediction's own pass)."""
    pred = store.prediction
    if pred is None:
        return None
    info = get_method(analysis.method)
    segments = store.segment_count(analysis.segments) if info.takes_segments else 0
    h, w = pred.shape
    facts = ImageFacts(h, w, segments or 0, len(pred.present_classes))
    try:
        cost = method_cost(analysis.method, facts, analysis.method_options())
    except Exception:  # noqa: BLE001 - a bad option: the job will say which, in a line
        return None
    seconds = cost.seconds(pred.seconds) if pred.seconds > 0 else None
    automatic = seconds is None or seconds <= auto_run_seconds
    return MethodEstimate(analysis.method, cost, seconds, automatic)
