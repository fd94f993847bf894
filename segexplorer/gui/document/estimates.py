"""What the chosen method will cost for the current image, before it runs: from the
method registry's cost, the session's memory facts (its budget and what one image takes,
measured or modelled) and the prediction's own forward time; a method estimated above
``AnalysisState.auto_run_seconds`` waits for Compute. The words are the engine's
(``describe_images``), so the estimate, the run's progress and its result say the same."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...engine.methods import Cost, ImageFacts, get_method, method_cost
from .choices import AnalysisChoice
from .formatting import format_duration
from .store import ResultStore

if TYPE_CHECKING:
    from ...engine.budget import MemoryFacts, MemoryUse


@dataclass(frozen=True)
class MethodEstimate:
    """What the chosen method will cost for this image, before it runs."""

    method: str
    cost: Cost  # with its memory (``cost.memory``) once a session exists
    seconds: float | None  # from the prediction's forward time; None before it
    automatic: bool  # cheap enough to start without asking

    def describe(self) -> str:
        """'300 images through the model (50 forward, 250 backward; ...), about 2 min
        and about 1.2 GiB (8 images at a time within the 11.2 GiB budget) here'."""
        return describe_run(self.cost.describe(), self.seconds, self.cost.memory)


def describe_run(images: str, seconds: float | None, memory: MemoryUse | None,
                 about: str = "about") -> str:
    """A run's images, then its time and its memory side by side (the cost gate's words,
    for a method and for an evaluation)."""
    here = []
    if seconds is not None:
        here.append(f"{about} {format_duration(seconds)}")
    if memory is not None:
        here.append(memory.describe())
    return images + (f", {' and '.join(here)} here" if here else "")


def image_seconds(store: ResultStore) -> float | None:
    """One image's time through the model, for estimates: the median of the session's
    chunked runs once there was one (steady), else the prediction's own pass (which
    pays for the model's first call on this image: an over-estimate, docs/performance.md);
    None before a prediction."""
    session, pred = store.session, store.prediction
    measured = session.memory.seconds_per_image() if session is not None else None
    if measured is not None and measured > 0:
        return measured
    return pred.seconds if pred is not None and pred.seconds > 0 else None


def memory_facts(store: ResultStore) -> MemoryFacts | None:
    """The current session's budget and one image's memory (None before a prediction)."""
    session = store.session
    return session.memory.memory_facts() if session is not None else None


def estimate_method(store: ResultStore, analysis: AnalysisChoice,
                    auto_run_seconds: float) -> MethodEstimate | None:
    """The chosen method's cost for this image and every predicted class, before it
    runs (images through the model, the memory of its largest chunk under the budget,
    and a time from one image's, :func:`image_seconds`)."""
    pred = store.prediction
    if pred is None:
        return None
    info = get_method(analysis.method)
    segments = store.segment_count(analysis.segments) if info.takes_segments else 0
    h, w = pred.shape
    facts = ImageFacts(h, w, segments or 0, len(pred.present_classes), memory_facts(store))
    try:
        cost = method_cost(analysis.method, facts, analysis.method_options())
    except Exception:  # noqa: BLE001 - a bad option: the job will say which, in a line
        return None
    per_image = image_seconds(store)
    seconds = cost.seconds(per_image) if per_image is not None else None
    automatic = seconds is None or seconds <= auto_run_seconds
    return MethodEstimate(analysis.method, cost, seconds, automatic)
