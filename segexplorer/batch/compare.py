"""``segexplorer batch INPUT --model A --with B``: two models compared on every image.

The batch's pipeline, journal and run record are the ones of any batch
(``batch/run.py``); only the per-image function differs. :class:`PairAnalyser` has the
shape of ``analyse.ImageAnalyser`` (``prepare`` in the decoding thread, ``analyse`` on the
model's thread, ``files`` in a writer thread) and runs, per image, what
``segexplorer compare`` runs (``engine.compare_run``: the two models loaded once, each
image prepared for each model, ``compare_sessions``), writes ``compare``'s files into
the image's folder (``export.compare.compare_files``, ``--outputs``' subset), and puts
into the image's journal line A's summary rows (so ``summary.parquet``, the context
matrix and the leaning table are A's) and the comparison's rows (``batch/comparison.py``:
``comparison.parquet`` and ``comparison.csv``).

Memory: before any image, the pair is checked against the memory budget at a square
working size of each model's side (refused in one line, nothing written); each image is
then checked at its own working sizes (an image whose shape makes the pair exceed the
budget is that image's error, in errors.csv). Both sessions chunk under the budget.

Not supported: ``--engine ray`` (refused in one line before anything is written).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..engine.errors import UserError
from .analyse import Outcome
from .comparison import JOURNAL_KEY
from .inputs import BatchItem
from .options import PairOptions

if TYPE_CHECKING:
    from PIL import Image

    from ..engine.compare import Comparison
    from ..engine.compare_run import PairMemory, PairModels
    from ..engine.image import PreparedImage
    from ..engine.jobs import JobState
    from .options import BatchOptions


def check_pair_options(options: BatchOptions) -> None:
    """What ``batch --with`` refuses before any work (one line each)."""
    if options.compare is None:
        return
    if options.engine != "local":
        raise UserError("--with runs on the local engine only: leave --engine ray out "
                        "(a comparison batch is not distributed over Ray).")
    from ..engine.compare import check_resample

    check_resample(options.compare.resample)


def pair_arguments(options: BatchOptions) -> dict[str, Any]:
    """run.json's arguments of B ({} for a batch of one model)."""
    return options.compare.arguments() if options.compare is not None else {}


@dataclass(frozen=True)
class PreparedPair:
    """An image decoded and prepared for both models, or why it could not be."""

    item: BatchItem
    image: Image.Image | None
    prepared: tuple[PreparedImage, PreparedImage] | None
    error: str | None = None


@dataclass(frozen=True)
class PairOutcome(Outcome):
    """An image's outcome with its comparison's rows in the journal line."""

    comparison: dict[str, Any] | None = None

    def journal_entry(self) -> dict[str, Any]:
        entry = super().journal_entry()
        if self.comparison is not None and not self.error:
            entry[JOURNAL_KEY] = self.comparison
        return entry


@dataclass(frozen=True)
class PairAnalysed:
    """An image the two models have been compared on, or why not (``outcome.error``)."""

    outcome: PairOutcome
    comparison: Comparison | None = None
    image: Image.Image | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.comparison is not None and self.outcome.error is None


class PairAnalyser:
    """The two models (loaded once, on the device), comparing image after image."""

    def __init__(self, options: BatchOptions, state: JobState | None = None) -> None:
        from ..engine.compare_run import load_models

        assert options.compare is not None
        self.request = options.request
        self.pair_options = options.compare
        self.outputs = options.outputs
        models = load_models(options.request, options.compare.request,
                             layer_b_given=options.compare.layer_given, state=state)
        square = (models.request_a.size or models.a.default_size,
                  models.request_b.size or models.b.default_size)
        models.memory((square[0], square[0]), (square[1], square[1])).check()
        self.models: PairModels = models.placed()
        self.model = self.models.a  # what the run records (model_info): A
        self._memory: dict[tuple[tuple[int, int], tuple[int, int]], PairMemory] = {}
        #: one image per pass: a pair's images do not share passes (batch/analyse.py does)
        self.images_per_pass = 1

    def analyse_group(self, group: list[PreparedPair], state: JobState | None = None
                      ) -> list[PairAnalysed]:
        """``analyse`` for each image of ``group``, one after the other."""
        return [self.analyse(prepared, state) for prepared in group]

    @property
    def notes(self) -> tuple[str, ...]:
        return self.models.notes

    def prepare(self, item: BatchItem) -> PreparedPair:
        """Decode and prepare the image for each model (thread-safe: no model call)."""
        from ..engine.errors import first_line
        from ..engine.image import load_image

        try:
            image = load_image(item.path)
            return PreparedPair(item, image, self.models.prepare(image))
        except UserError as exc:
            return PreparedPair(item, None, None, exc.message)
        except Exception as exc:  # noqa: BLE001 - untrusted files: the image's error
            return PreparedPair(item, None, None, f"could not be prepared ("
                                f"{type(exc).__name__}: {first_line(exc)})")

    def memory(self, shape_a: tuple[int, int], shape_b: tuple[int, int]) -> PairMemory:
        """The pair's memory at these working sizes (estimated once per pair of shapes)."""
        key = (shape_a, shape_b)
        if key not in self._memory:
            self._memory[key] = self.models.memory(shape_a, shape_b)
        return self._memory[key]

    def analyse(self, prepared: PreparedPair, state: JobState | None = None) -> PairAnalysed:
        """``compare``'s analysis of one image and its rows (the model's stage)."""
        from ..engine.aggregation import Aggregation
        from ..engine.compare_run import compare_sessions
        from ..engine.errors import Cancelled, first_line
        from ..engine.session import Session
        from .analyse import image_rows
        from .comparison import image_entry

        item = prepared.item
        start = time.perf_counter()
        if prepared.prepared is None or prepared.image is None:
            return PairAnalysed(PairOutcome(item.key, item.path,
                                            error=prepared.error or "could not be read"))
        prepared_a, prepared_b = prepared.prepared
        models = self.models
        try:
            memory = self.memory(prepared_a.shape, prepared_b.shape).check()
            session_a = Session(models.a, prepared_a, precision=models.request_a.precision,
                                budget=models.budget)
            session_b = Session(models.b, prepared_b, precision=models.request_b.precision,
                                budget=models.budget)
            request_a = replace(models.request_a, image=item.path)
            request_b = replace(models.request_b, image=item.path)
            comparison = compare_sessions(session_a, session_b, request_a, request_b,
                                          targets=self.request.targets,
                                          resample=self.pair_options.resample,
                                          matching=models.matching, state=state)
            rows = image_rows(item.key, comparison.a.result,
                              session_a.scores(Aggregation(request_a.aggregation)))
            entry = image_entry(comparison)
        except (Cancelled, KeyboardInterrupt):
            raise
        except UserError as exc:
            return PairAnalysed(PairOutcome(item.key, item.path, error=exc.message,
                                            seconds=time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001 - a model failed on this image: go on
            return PairAnalysed(PairOutcome(
                item.key, item.path, seconds=time.perf_counter() - start,
                error=f"a model failed on this image ({type(exc).__name__}: "
                      f"{first_line(exc)})"))
        width, height = prepared.image.size
        context = {"image": item.path, "image_size": [width, height],
                   "memory": memory.to_json(), "notes": list(models.notes)}
        outcome = PairOutcome(item.key, item.path, tuple(rows), None,
                              time.perf_counter() - start, entry)
        return PairAnalysed(outcome, comparison, prepared.image, context)

    def files(self, analysed: PairAnalysed) -> Iterator[tuple[str, bytes]]:
        """``compare``'s files for the image (``--outputs``' subset; thread-safe: no model
        call); none for an image that could not be compared."""
        if analysed.comparison is None or analysed.image is None or analysed.outcome.error:
            return iter(())
        import numpy as np

        from ..engine.image import to_rgb
        from ..export.compare import compare_files

        image = analysed.image
        photo = np.asarray(image if image.mode == "RGB" else to_rgb(image), np.uint8)
        return compare_files(analysed.comparison, analysed.context, photo, self.outputs)


def new_analyser(options: BatchOptions, state: JobState | None = None) -> Any:
    """The per-image function of a local run: the pair's (``--with``) or one model's."""
    if options.compare is not None:
        return PairAnalyser(options, state)
    from .analyse import ImageAnalyser

    return ImageAnalyser(options.request, state, outputs=options.outputs,
                         images_per_pass=options.images_per_pass)


__all__ = ["PairAnalyser", "new_analyser", "PairOptions", "check_pair_options", "pair_arguments"]
