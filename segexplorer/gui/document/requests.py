"""The jobs the document can ask for, as values: each names its channel (one job at a time
per channel) and its key (what identifies its result).

The planner (:func:`.planner.plan`) answers with these; whoever owns a kind of request
registers how it becomes a job and what its result does (:class:`.jobtable.JobTable`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from .keys import (
    AblatedKey,
    AblationKey,
    ComparisonKey,
    EvaluationKey,
    GradCamKey,
    ImageKey,
    MethodKey,
    ModelKey,
    PairAblationKey,
    PredictKey,
    SecondKey,
    SweepKey,
)


class Request(Protocol):
    """What every request has: its channel and its key."""

    @property
    def channel(self) -> str: ...

    @property
    def key(self) -> Hashable: ...


@dataclass(frozen=True)
class LoadEngine:
    """Import torch and the engine (once)."""

    channel: ClassVar[str] = "startup"
    key: ClassVar[str] = "startup"


@dataclass(frozen=True)
class LoadModel:
    key: ModelKey
    channel: ClassVar[str] = "model"


@dataclass(frozen=True)
class OpenImage:
    """Read an image the user opened and prepare it at the working size."""

    key: ImageKey
    channel: ClassVar[str] = "image"


@dataclass(frozen=True)
class Resize:
    """Prepare the opened image at another working size."""

    key: ImageKey
    channel: ClassVar[str] = "image"


@dataclass(frozen=True)
class Predict:
    key: PredictKey
    gradcam: GradCamKey | None  # the same forward pass also gives this Grad-CAM
    channel: ClassVar[str] = "predict"


@dataclass(frozen=True)
class ComputeGradCam:
    key: GradCamKey
    channel: ClassVar[str] = "gradcam"


@dataclass(frozen=True)
class ComputeSweep:
    key: SweepKey
    channel: ClassVar[str] = "sweep"


@dataclass(frozen=True)
class ComputeMethod:
    """Another registered method's maps for every class."""

    key: MethodKey
    channel: ClassVar[str] = "method"


@dataclass(frozen=True)
class ComputeAblatedInput:
    key: AblatedKey
    channel: ClassVar[str] = "ablated"


@dataclass(frozen=True)
class Ablate:
    """Ablate mode's selection, in one forward pass (the sweep could not answer it)."""

    key: AblationKey
    channel: ClassVar[str] = "ablated"


@dataclass(frozen=True)
class Evaluate:
    key: EvaluationKey
    channel: ClassVar[str] = "evaluate"


@dataclass(frozen=True)
class AuditLayers:
    """What the engine says of every layer of the prediction's model (the layer picker)."""

    key: PredictKey
    channel: ClassVar[str] = "shapes"


@dataclass(frozen=True)
class PrepareSecond:
    """The comparison's model B: loaded (unless it is A's), the pair's memory checked on
    A's device, and B's prediction of the image."""

    key: SecondKey
    channel: ClassVar[str] = "compare"


@dataclass(frozen=True)
class AblateBoth:
    """The comparison's selection ablated in both models."""

    key: PairAblationKey
    channel: ClassVar[str] = "compare"


@dataclass(frozen=True)
class CompareMaps:
    """The comparison of the chosen method in both models."""

    key: ComparisonKey
    channel: ClassVar[str] = "compare"


@dataclass(frozen=True)
class ReadDataset:
    """Read a batch output folder (``generation``: read again, e.g. while a batch runs)."""

    folder: str
    generation: int
    channel: ClassVar[str] = "dataset"

    @property
    def key(self) -> tuple[str, int]:
        return self.folder, self.generation


@dataclass(frozen=True)
class BatchSpec:
    """A batch the dataset window runs: the folders, and the window's model and options."""

    source: str
    out: str
    model: tuple[tuple[str, object], ...]  # ModelChoice, as pairs
    analysis: tuple[tuple[str, object], ...]  # AnalysisChoice, as pairs
    run: int  # a new number each time Run is pressed
    memory_gib: float | None = None  # the memory budget (Preferences; None: the default)
    methods: tuple[str, ...] = ()  # () : the batch's default methods
    targets: str = "all"  # the classes explained: 'all' or names / indices
    outputs: str = "full"  # the files each image gets (a continued batch keeps its own)
    size: int | None = None  # the working size; None: the model's own


@dataclass(frozen=True)
class RunBatch:
    key: BatchSpec
    channel: ClassVar[str] = "batch"


@dataclass(frozen=True, eq=False)
class WriteFile:
    """One file (or folder) written in a job (an export, a saved session): where, how,
    the job's label, and what the status line says once it is written."""

    target: str
    write: Callable[[object], object]  # fn(state) -> the path written
    label: str
    message: Callable[[Path], str]

    @property
    def channel(self) -> str:  # one channel per file: writes never cancel one another
        return f"write:{self.target}"

    @property
    def key(self) -> tuple[str, int]:  # each write runs, even of the same file
        return self.target, id(self)


#: what the planner asks for, in the order it asks
Planned = (LoadEngine | LoadModel | OpenImage | Resize | Predict | ComputeGradCam
           | ComputeSweep | ComputeMethod | ComputeAblatedInput | Ablate | Evaluate
           | AuditLayers)
