"""What a batch is asked to do and what it reports (shared by both engines; no torch)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..export.outputs import FULL

if TYPE_CHECKING:
    from ..engine.analysis import ExplainRequest

ENGINES = ("local", "ray")
DEFAULT_PREFETCH = 4  # images decoded ahead of the model
MAX_WRITERS = 8  # writer threads by default, at most (see default_writers)


def default_writers(cpus: int | None = None) -> int:
    """Writer threads when none are asked for: one per CPU beside the model's thread,
    1 to ``MAX_WRITERS``.

    A model on the CPU uses the CPUs itself: on a 2-core machine one writer. A GPU's host
    has cores to spare, and its model can be faster than one writer: an image's files
    (rendering, PNG and NPZ compression) take several times the model's time there
    (docs/scale.md), and these release the GIL, so threads share the work.
    """
    count = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, min(MAX_WRITERS, count - 1))


@dataclass(frozen=True)
class PairOptions:
    """Model B of ``batch --with``: its request (the batch's options, B's model, weights,
    working size and layer), whether its layer was given (``--with-layer``), and how
    attribution maps reach the original grid (``--resample-maps``)."""

    request: ExplainRequest
    layer_given: bool = False
    resample: str = "nearest"

    def arguments(self) -> dict[str, Any]:
        """What run.json records of B (a continued run must name the same B)."""
        from pathlib import Path

        from ..engine.cards import is_card_path

        req = self.request
        model = str(Path(req.model).expanduser().resolve()) if is_card_path(req.model) \
            else req.model
        weights = req.weights
        if weights not in (None, "default", "untrained"):
            weights = str(Path(weights).expanduser().resolve())
        return {"with": model, "with_weights": weights, "with_size": req.size,
                "with_layer": req.layer if self.layer_given else None,
                "resample_maps": self.resample}


@dataclass(frozen=True)
class BatchOptions:
    input: str
    out: str
    request: ExplainRequest  # the options of every image (its image field is unused)
    engine: str = "local"
    address: str | None = None  # Ray: None starts a local Ray; 'auto' or HOST:PORT joins one
    actors: int | None = None  # Ray: how many actors hold a model (default: see ray_engine)
    prefetch: int = DEFAULT_PREFETCH
    retry_errors: bool = False  # images that failed before are tried again
    outputs: str = FULL  # which of explain's files each image gets (export.outputs)
    writers: int | None = None  # threads writing the files (None: default_writers())
    compare: PairOptions | None = None  # --with: model B, compared with A on every image
    # the most same-shape images of one shared pass (None: the device's, see
    # engine.session.images_per_pass; the memory budget may allow fewer)
    images_per_pass: int | None = None

    def writer_count(self) -> int:
        return self.writers if self.writers is not None else default_writers()


@dataclass(frozen=True)
class BatchReport:
    folder: Path
    total: int  # images in the input
    done_before: int  # finished by earlier runs
    explained: int  # explained by this run
    errors: int  # failed in this run
    seconds: float  # this run's time on images (the model's loading excluded)
    model: str = ""
    untrained: bool = False
    device: str = ""
    written: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def images_per_second(self) -> float:
        done = self.explained + self.errors
        return done / self.seconds if self.seconds > 0 else 0.0
