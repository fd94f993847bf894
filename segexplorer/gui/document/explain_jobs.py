"""How the explain path's requests become jobs: the model, the image, the prediction and
the chosen method's result. Each function takes only what its job reads (a snapshot made
on the GUI thread: napari's shape) and returns a :class:`~.jobtable.Job`; the document
registers them and owns what their results do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ...engine.methods import PERTURBATION, get_method
from .choices import METHOD_LABELS, AnalysisChoice
from .jobtable import Job
from .keys import ImageKey
from .preview import Preview, wants_preview
from .requests import (
    ComputeAblatedInput,
    ComputeGradCam,
    ComputeMethod,
    ComputeSweep,
    LoadModel,
    Predict,
)
from .runner import JobContext
from .sources import ImageSource

if TYPE_CHECKING:  # the engine imports torch: the document loads it in a job
    from PIL.Image import Image

    from ...engine.budget import MemoryBudget
    from ...engine.image import PreparedImage
    from ...engine.models import LoadedModel
    from ...engine.results import AblationSweep, GradCamResult, MethodMaps, Prediction
    from ...engine.session import Session


def load_model_job(request: LoadModel) -> Job:
    key = request.key

    def job(state: JobContext) -> LoadedModel:
        from ...engine.models import load_model

        return load_model(key.architecture, key.weights, key.device, state=state)

    return Job(job, f"Loading {Path(key.architecture).name}", uses_model=False)


def open_image_job(source: ImageSource, key: ImageKey) -> Job:
    def job(state: JobContext) -> tuple[Image, PreparedImage]:
        from ...engine.image import preprocess

        pil = source.load()
        state.set_progress(1, 2, "Preparing the image")
        return pil, preprocess(pil, key.size)

    return Job(job, f"Opening {source.label}", uses_model=False)


def resize_job(pil: Image, key: ImageKey) -> Job:
    def job(state: JobContext) -> tuple[Image, PreparedImage]:
        from ...engine.image import preprocess

        return pil, preprocess(pil, key.size)

    return Job(job, "Resizing the image", uses_model=False)


def predict_job(request: Predict, model: LoadedModel, prepared: PreparedImage, pil: Image,
                analysis: AnalysisChoice, preview: Preview,
                on_preview: Callable[[object], object], budget: MemoryBudget | None = None
                ) -> Job:
    """One forward pass: the prediction, and Grad-CAM for every class when the view
    needs it; on a slow device a quick look first (``preview``). The session works
    under ``budget`` (the Preferences' memory budget; None: the engine's default)."""
    key, with_gradcam = request.key, request.gradcam is not None

    def full(state: JobContext) -> object:
        from ...engine.session import Session

        session = Session(model, prepared, precision=key.precision, budget=budget)
        if not with_gradcam:
            return session, session.predict(state), None
        from ...engine.aggregation import Aggregation

        gradcam = session.gradcam(None, layer=analysis.layer or None,
                                  aggregation=Aggregation(analysis.aggregation),
                                  upsample=analysis.upsample, state=state)
        return session, session.predict(state), gradcam

    job: Callable[[JobContext], object] = full
    if wants_preview(model, prepared.size):  # a slow device: a quick look first
        job = preview.wrap(full, model, pil, analysis, key, prepared.size, budget)
    return Job(job, "Predicting", on_partial=on_preview, lock_key=key.model)


def gradcam_job(request: ComputeGradCam, session: Session) -> Job:
    key = request.key

    def job(state: JobContext) -> GradCamResult:
        from ...engine.aggregation import Aggregation

        return session.gradcam(None, layer=key.layer or None,
                               aggregation=Aggregation(key.aggregation),
                               upsample=key.upsample, state=state)

    return Job(job, "Grad-CAM for every class", lock_key=key.predict.model)


def sweep_job(request: ComputeSweep, session: Session, prediction: Prediction) -> Job:
    key = request.key

    def job(state: JobContext) -> AblationSweep:
        from ...engine.aggregation import Aggregation

        segments = prediction.segments(key.segments)  # a multi-label model's: label sets
        return session.sweep(segments, baseline=key.baseline,
                             aggregation=Aggregation(key.aggregation), state=state)

    return Job(job, "Ablation sweep", lends_model=True, lock_key=key.predict.model)


def method_job(request: ComputeMethod, session: Session, analysis: AnalysisChoice,
               gradcam: GradCamResult | None) -> Job:
    """Another registered method for every class (Guided Grad-CAM reuses ``gradcam``)."""
    key = request.key
    options = analysis.method_options()

    def job(state: JobContext) -> MethodMaps:
        from ...engine.attribution import compute

        return compute(session, key.method, None, options, state=state, gradcam=gradcam)

    # perturbation methods run plain forward passes: a click may borrow the model
    return Job(job, f"{METHOD_LABELS[key.method]} for every class",
               lends_model=get_method(key.method).family == PERTURBATION,
               lock_key=key.predict.model)


def ablated_input_job(request: ComputeAblatedInput, session: Session,
                      prediction: Prediction) -> Job:
    key = request.key

    def job(state: JobContext) -> object:
        from ...engine.image import denormalize

        segments = prediction.segments(key.segments)
        # the target's pixels: its segments (a multi-label model's: every label set in it)
        ids = [s.id for s in segments.info if s.has_class(key.target)]
        # shown as the model sees it: with the model's own mean and std (a card's)
        return denormalize(session.ablated_input(segments, ids, baseline=key.baseline),
                           session.image.normalization)

    return Job(job, "Ablating the target", uses_model=False)
