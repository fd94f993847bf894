"""The per-image function both engines run: an image in, ``explain``'s files and the
summary rows out, in three stages (``batch/pipeline.py`` runs them on three kinds of
thread).

:class:`ImageAnalyser` holds the model (loaded once).

* ``prepare`` decodes and preprocesses an image (no model call: a background thread runs
  it ahead of the model);
* ``analyse`` runs :func:`~segexplorer.engine.analysis.explain_session` on it, exactly as
  ``segexplorer explain`` does, and computes the image's rows for the summary (the
  model's thread); ``analyse_group`` does it for several images, those of one shape
  sharing the prediction's pass and Grad-CAM's (``engine.session.gradcam_together``: as
  many per pass as :func:`~segexplorer.engine.session.images_per_pass` and the memory
  budget allow; one on a CPU unless asked);
* ``files`` renders and encodes ``explain``'s files for it, the same bytes as ``explain``
  writes (:func:`~segexplorer.export.bundle.explain_files`), or the subset ``--outputs``
  asks for (a writer thread).

A problem with the image (it cannot be decoded, it is too thin, the model fails on it)
becomes an error outcome and the batch goes on; a problem with the output folder (a full
disk) stops the batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..engine.aggregation import Aggregation
from ..engine.analysis import (
    ExplainRequest,
    ExplainResult,
    check_request,
    explain_session,
    gradcam_targets,
    prepare_image,
)
from ..engine.errors import Cancelled, UserError, first_line
from ..engine.image import PreparedImage, load_image
from ..engine.jobs import JobState
from ..engine.methods import GRADCAM_PASS_METHODS, get_method, parse_methods
from ..engine.models import LoadedModel, load_model
from ..engine.results import GradCamResult
from ..engine.session import Session, gradcam_together, predict_together
from ..engine.session import images_per_pass as most_per_pass
from ..export.bundle import explain_files
from ..export.outputs import FULL
from .inputs import BatchItem


@dataclass(frozen=True)
class Prepared:
    """An image decoded and preprocessed for the model, or why it could not be."""

    item: BatchItem
    image: PreparedImage | None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """One image's result: its summary rows, or its error (one line)."""

    key: str
    path: str
    rows: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    seconds: float = 0.0

    def journal_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"key": self.key, "path": self.path,
                                 "status": "error" if self.error else "ok",
                                 "seconds": round(self.seconds, 4)}
        if self.error:
            entry["error"] = self.error
        else:
            entry["rows"] = list(self.rows)
        return entry


@dataclass(frozen=True)
class Shared:
    """An image's session after a pass shared with other images of its shape: its
    prediction is made, and ``gradcam`` is its Grad-CAM when the methods want one."""

    session: Session
    gradcam: GradCamResult | None
    timings: dict[str, float]


@dataclass(frozen=True)
class Analysed:
    """An image the model has explained (``result``), or could not (``outcome.error``)."""

    outcome: Outcome
    result: ExplainResult | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.outcome.error is None


class ImageAnalyser:
    """One loaded model, explaining image after image with the same options."""

    def __init__(self, request: ExplainRequest, state: JobState | None = None,
                 model: LoadedModel | None = None, outputs: str = FULL,
                 images_per_pass: int | None = None) -> None:
        self.request = request
        self.outputs = outputs
        self.model = model if model is not None else load_model(
            request.model, request.weights, request.device,
            allow_download=request.allow_download, state=state)
        check_request(request, self.model)  # a bad layer: refused before any image
        #: the most same-shape images of one shared pass (the memory budget may allow fewer)
        self.images_per_pass = most_per_pass(self.model, request.precision, images_per_pass)
        self._memory: dict[tuple[int, ...], dict[str, int]] = {}  # per shape, per pass

    def prepare(self, item: BatchItem) -> Prepared:
        """Decode and preprocess (thread-safe: no model call)."""
        timings: dict[str, float] = {}
        try:
            t0 = time.perf_counter()
            image = load_image(item.path)
            timings["load_image"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            prepared = prepare_image(image, self.request, self.model)
            timings["preprocess"] = time.perf_counter() - t0
        except UserError as exc:
            return Prepared(item, None, exc.message)
        except Exception as exc:  # noqa: BLE001 - untrusted files: the image's error
            return Prepared(item, None, f"could not be prepared ({type(exc).__name__}: "
                                        f"{first_line(exc)})")
        return Prepared(item, prepared, None, timings)

    def analyse(self, prepared: Prepared, state: JobState | None = None,
                shared: Shared | None = None) -> Analysed:
        """``explain``'s analysis of a prepared image and its summary rows (the model's
        stage: nothing is rendered or written here); ``shared``: its session after a pass
        shared with other images (``analyse_group``)."""
        item = prepared.item
        start = time.perf_counter()
        if prepared.image is None:
            return Analysed(Outcome(item.key, item.path,
                                    error=prepared.error or "could not be read"))
        request = replace(self.request, image=item.path)
        try:
            timings = dict(prepared.timings)
            if shared is not None:
                session, gradcam = shared.session, shared.gradcam
                timings.update(shared.timings)
            else:
                session = Session(self.model, prepared.image, precision=request.precision,
                                  budget=request.memory_budget(self.model))
                gradcam = None
            result = explain_session(session, request, state=state, timings=timings,
                                     gradcam=gradcam)
            rows = image_rows(item.key, result, session.scores(Aggregation(
                request.aggregation)))
        except (Cancelled, KeyboardInterrupt):
            raise
        except UserError as exc:
            return Analysed(Outcome(item.key, item.path, error=exc.message,
                                    seconds=time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001 - the model failed on this image: go on
            return Analysed(Outcome(
                item.key, item.path, seconds=time.perf_counter() - start,
                error=f"the model failed on this image ({type(exc).__name__}: "
                      f"{first_line(exc)})"))
        return Analysed(Outcome(item.key, item.path, tuple(rows), None,
                                time.perf_counter() - start), result)

    def analyse_group(self, group: list[Prepared], state: JobState | None = None
                      ) -> list[Analysed]:
        """``analyse`` for each image of ``group``, in order; images of one shape share
        the prediction's pass and Grad-CAM's. A shared pass that fails (the model on one
        of its images) is done again image by image, so each image gets its own outcome."""
        sessions: dict[int, Session] = {}
        for i, prepared in enumerate(group):
            if prepared.image is not None and len(group) > 1:
                sessions[i] = Session(self.model, prepared.image,
                                      precision=self.request.precision,
                                      budget=self.request.memory_budget(self.model))
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, session in sessions.items():
            by_shape.setdefault(tuple(session.input.shape), []).append(i)
        shared: dict[int, Shared] = {}
        for shape, members in by_shape.items():
            if len(members) > 1:
                passes = self._share_pass([sessions[i] for i in members], shape, state)
                shared.update(zip(members, passes))
        return [self.analyse(p, state, shared.get(i)) for i, p in enumerate(group)]

    def _share_pass(self, sessions: list[Session], shape: tuple[int, ...],
                    state: JobState | None) -> list[Shared]:
        """The pass each image's ``explain_session`` would start with, done for all at
        once; none when it failed (each image is then done on its own)."""
        request = self.request
        memory = self._memory.setdefault(shape, {})
        start = time.perf_counter()
        gradcams: list[GradCamResult | None] = [None] * len(sessions)
        try:
            if any(m in GRADCAM_PASS_METHODS for m in parse_methods(request.methods)):
                wanted = gradcam_targets(request, self.model.categories)
                gradcams = list(gradcam_together(
                    sessions, [wanted] * len(sessions), layer=request.layer,
                    aggregation=Aggregation(request.aggregation), upsample=request.upsample,
                    state=state, most=self.images_per_pass, memory=memory))
                timing = "predict_and_gradcam"
            else:
                predict_together(sessions, state=state, most=self.images_per_pass,
                                 memory=memory)
                timing = "predict"
        except (Cancelled, KeyboardInterrupt):
            raise
        except Exception:  # noqa: BLE001 - each image on its own says which one failed
            return []
        seconds = (time.perf_counter() - start) / len(sessions)
        return [Shared(s, g, {timing: seconds, "images_in_pass": float(len(sessions))})
                for s, g in zip(sessions, gradcams)]

    def files(self, analysed: Analysed) -> Iterator[tuple[str, bytes]]:
        """The image's files, rendered and encoded one by one (thread-safe: no model
        call); none for an image that could not be explained."""
        if analysed.result is None or analysed.outcome.error:
            return iter(())
        return explain_files(analysed.result, self.outputs)


def model_info(model: LoadedModel) -> dict[str, Any]:
    """What the batch records and tells about the model (once per run)."""
    from ..engine.devices import describe_device

    card = model.card
    code = (f"{card.factory[0].name}:{card.factory[1]}"
            if card is not None and card.runs_code and card.factory else None)
    return {"model": model.name, "weights": model.weights, "untrained": model.untrained,
            "device": describe_device(model.device), "classes": list(model.categories),
            "card": str(card.path) if card is not None else None, "card_code": code,
            "binary": model.binary, "outputs": model.outputs}


# ----------------------------------------------------------------------------- rows


def class_maps(result: ExplainResult) -> dict[str, Callable[[int], np.ndarray | None]]:
    """For each method ``explain`` produced that has one map per class: class -> its
    H x W attribution map (None where it was not computed for that class).

    Methods without a per-class map (the layer's activation) have no entry; every other
    method of ``result.methods`` has one, so the summary's per-method columns follow
    whatever ``explain`` computed.
    """
    maps: dict[str, Callable[[int], np.ndarray | None]] = {}
    gradcam, sweep = result.gradcam, result.sweep
    # the methods of the engine's registry (occlusion, integrated gradients, Shapley
    # values, ...) keep one H x W map per target in ``result.maps[method].maps``
    registered = getattr(result, "maps", None) or {}
    for method in result.methods:
        if not get_method(method).per_class:  # the activation: one map for every class
            continue
        if method == "gradcam" and gradcam is not None:
            maps[method] = gradcam.upsampled.get
        elif method == "ablation" and sweep is not None:
            maps[method] = sweep.attribution_map
        else:
            per_class = getattr(registered.get(method), "maps", None)
            if isinstance(per_class, dict):
                maps[method] = per_class.get
    return maps


def map_statistics(attribution: np.ndarray, own: np.ndarray) -> dict[str, float | None]:
    """How an attribution map for class c sits on c's own pixels (``own``) and outside.

    ``outside_share``: the share of the map's positive attribution that lies outside c's
    own segment (0: all on the object; 1: all on its context; None: nothing positive).
    """
    values = attribution.astype(np.float64)
    positive = np.clip(values, 0.0, None)
    total = float(positive.sum())
    outside = float(positive[~own].sum())
    inside_mean = float(values[own].mean()) if own.any() else None
    outside_mean = float(values[~own].mean()) if (~own).any() else None
    return {
        "outside_share": outside / total if total > 0 else None,
        "inside_mean": inside_mean,
        "outside_mean": outside_mean,
    }


def image_rows(key: str, result: ExplainResult, scores: np.ndarray) -> list[dict[str, Any]]:
    """One row per predicted class: its pixels and score, each method's statistics, and
    its score's change when each class's segments are ablated (Captum's sign: the
    original score minus the ablated one; the sum over the class's segments when
    segments are connected components).

    A multi-label model's rows also say which other classes share the class's pixels
    (``overlaps``: class -> share of the image in both), and a label-set segment counts
    for each of its classes (the "no class" segment for none)."""
    pred = result.prediction
    counts = pred.pixel_counts
    both = pred.overlap_counts() if pred.multilabel else None
    maps = class_maps(result)
    sweep = result.sweep
    table = sweep.table if sweep is not None else None
    rows = []
    for c in pred.present_classes:
        own = pred.mask(c)
        row: dict[str, Any] = {
            "image": key,
            "class_index": int(c),
            "class": pred.categories[c],
            "pixels": int(counts[c]),
            "share": pred.share(c),
            "score": float(scores[c]),
            "target": c in result.targets,
            "outputs": pred.outputs,
        }
        if both is not None:
            row["overlaps"] = {str(j): float(both[c, j]) / pred.class_map.size
                               for j in np.flatnonzero(both[c]) if j != c}
        stats: dict[str, dict[str, float | None]] = {}
        for method, lookup in maps.items():
            attribution = lookup(c) if c in result.targets else None
            if attribution is not None:
                stats[method] = map_statistics(attribution, own)
        row["methods"] = stats
        if table is not None and sweep is not None:
            deltas: dict[str, float] = {}
            for i, seg in enumerate(sweep.segments.info):
                for k in (seg.classes if seg.classes is not None else (seg.class_index,)):
                    deltas[str(k)] = deltas.get(str(k), 0.0) + float(table[i, c])
            row["ablation"] = deltas
        rows.append(row)
    return rows
