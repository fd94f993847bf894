"""What identifies each computed result: frozen, hashable, compared by name (not position).

A result is valid only for its key; every key below the model and the image names the
prediction it was computed from, so the result store can drop whatever belongs to an
older prediction in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelKey:
    """A loaded model (precision and working size do not reload it)."""

    architecture: str
    weights: str
    device: str


@dataclass(frozen=True)
class ImageKey:
    """An opened image at a working size."""

    source: int  # ImageSource.key: a new number for every opened file or paste
    size: int


@dataclass(frozen=True)
class PredictKey:
    """A prediction: the model, the image and the arithmetic."""

    model: ModelKey
    image: ImageKey
    precision: str


@dataclass(frozen=True)
class GradCamKey:
    """Grad-CAM for every class (and the layer's activation) from one pass."""

    predict: PredictKey
    layer: str  # '' = the model's default layer
    aggregation: str
    upsample: str


@dataclass(frozen=True)
class SweepKey:
    """One ablation sweep (every segment once, every class's score each time)."""

    predict: PredictKey
    segments: str
    baseline: str
    aggregation: str


@dataclass(frozen=True)
class AblatedKey:
    """The input with the target's segments replaced by the baseline."""

    predict: PredictKey
    segments: str
    baseline: str
    target: int


@dataclass(frozen=True)
class Selection:
    """What is ablated: segment ids of one segments kind, replaced by one baseline."""

    kind: str
    baseline: str
    ids: tuple[int, ...]


@dataclass(frozen=True)
class AblationKey:
    """One ablation (ablate mode): a selection of the prediction's segments."""

    predict: PredictKey
    selection: Selection


@dataclass(frozen=True)
class MethodKey:
    """Any other registered method's maps for every class (engine.attribution.compute)."""

    predict: PredictKey
    method: str
    settings: tuple[tuple[str, object], ...]  # MethodOptions.used_by(method)


@dataclass(frozen=True)
class EvaluationKey:
    """An evaluation of some methods for every class (engine.evaluation.evaluate)."""

    predict: PredictKey
    methods: tuple[str, ...]
    options: tuple[tuple[str, object], ...]  # every MethodOptions field
    settings: tuple[tuple[str, object], ...]  # EvaluationSettings, as pairs


@dataclass(frozen=True)
class SecondKey:
    """Model B's prediction beside model A's (the comparison): A's prediction, B's model
    (on A's device, at A's arithmetic) and B's working size."""

    a: PredictKey
    model: ModelKey
    size: int


@dataclass(frozen=True)
class ComparisonKey:
    """The comparison of one method's maps in both models (``compare_sessions``)."""

    pair: SecondKey
    method: str
    options: tuple[tuple[str, object], ...]  # every MethodOptions field


@dataclass(frozen=True)
class PairAblationKey:
    """A selection of common segments (or a drawn region) ablated in both models."""

    pair: SecondKey
    selection: Selection


ResultKey = GradCamKey | SweepKey | AblatedKey | MethodKey | EvaluationKey
