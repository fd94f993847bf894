"""Click-to-ablate helpers shared by the CLI and the window (no I/O here)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from .errors import UserError
from .jobs import JobState
from .results import AblationSweep, Prediction
from .segments import Segments
from .session import AblationOutcome, Session


def to_working(session: Session, x: float, y: float) -> tuple[int, int]:
    """A point in the original image's pixels to the working image's pixel."""
    w0, h0 = session.image.original_size
    if not (0 <= x < w0 and 0 <= y < h0):
        raise UserError(f"Point ({x:g}, {y:g}) is outside the {w0} x {h0} image: give X,Y "
                        "in the original image's pixel coordinates.")
    h, w = session.image.shape
    # x * w / w0 (not x * (w / w0)): exact for points on the working grid
    return min(w - 1, int(math.floor(x * w / w0))), min(h - 1, int(math.floor(y * h / h0)))


def ablate_at_points(
    session: Session,
    points: list[tuple[float, float]],
    segments_kind: str = "class",
    baseline: str = "zero",
    state: JobState | None = None,
    sweep: AblationSweep | None = None,
) -> tuple[AblationOutcome, Segments]:
    """Ablate together the segments under ``points`` (original-image coordinates)."""
    prediction = session.predict(state)
    segments = (sweep.segments if sweep is not None and sweep.segments.kind == segments_kind
                else prediction.segments(segments_kind))
    ids = [segments.at(*to_working(session, x, y)).id for x, y in points]
    return session.ablate(segments, ids, baseline=baseline, sweep=sweep, state=state), segments


def relative_change(before: float, after: float) -> float | None:
    return None if before == 0 else (after - before) / abs(before)


def format_percent(fraction: float, signed: bool = False) -> str:
    """Whole percent, with one decimal below 10 % so that small changes do not read 0 %."""
    value = fraction * 100
    digits = 1 if 0 < abs(value) < 10 else 0
    return f"{value:{'+' if signed else ''}.{digits}f} %"


def summary_line(prediction: Prediction, outcome: AblationOutcome, segments: Segments) -> str:
    """e.g. 'bus -83 %; 12 % of pixels changed class' (multilabel: every class of the
    ablated label sets, and the pixels whose set of classes changed)."""
    classes = sorted({c for s in segments.info if s.id in outcome.segment_ids
                      for c in (s.classes if s.classes is not None else (s.class_index,))
                      if 0 <= c < len(prediction.categories)})
    parts = []
    for c in classes:
        rel = relative_change(float(outcome.before[c]), float(outcome.after[c]))
        change = "n/a" if rel is None else format_percent(rel, signed=True)
        parts.append(f"{prediction.categories[c]} {change}")
    changed = format_percent(outcome.changed_fraction)
    return f"{', '.join(parts)}; {changed} of pixels changed class"


def segment_label(categories: Sequence[str], segments: Segments, segment_id: int) -> str:
    """A segment's name: its class, and for a connected component which one of how many.

    Components of one class are numbered in the engine's order (scan order), e.g.
    'person 2 of 3'; a class segment, or a class with one component, is just 'person'.
    """
    info = {s.id: s for s in segments.info}[int(segment_id)]
    name = info.name(categories)  # a multi-label model's: its label set ('a + b')
    if segments.kind == "class":
        return name
    if segments.kind.startswith("region"):
        return f"drawn region (mostly {name})" if info.id == 1 else "all but the region"
    same = [s.id for s in segments.info
            if (s.class_index, s.classes) == (info.class_index, info.classes)]
    return name if len(same) == 1 else f"{name} {same.index(info.id) + 1} of {len(same)}"


def selection_label(categories: Sequence[str], segments: Segments,
                    segment_ids: Iterable[int]) -> str:
    """The segments of one ablation, e.g. 'person + dog 2 of 3'."""
    return " + ".join(segment_label(categories, segments, s) for s in sorted(segment_ids))
