"""The analysis document: the user's choices, what is loaded and computed, and the jobs.

One walk through it: a view calls a verb (``set_analysis``, ``open_image``, ``click``
...), the document updates its choices and asks :func:`.planner.plan` what is missing,
the job book submits those requests to the runner, results land in the
:class:`.store.ResultStore`, and every change ends with the ``changed`` event, on which a
view asks the :class:`.presenter.Presenter` for what to show. Nothing here imports Qt;
tests drive it with :class:`.runner.QueueRunner`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ...engine.cards import is_card_path
from ...engine.methods import get_method
from . import catalog
from .ablation import Ablation
from .choices import (
    ATTRIBUTION,
    DEFAULT_OPACITY,
    IMAGE,
    LAYER_LABELS,
    LAYER_METHODS,
    METHOD_LABELS,
    OTHER_METHODS,
    AnalysisChoice,
    ModelChoice,
    ViewChoice,
    default_model_choice,
    default_target,
)
from .estimates import MethodEstimate, estimate_method
from .evaluation import EvaluationDoc
from .events import Event
from .jobbook import JobBook
from .keys import AblatedKey, GradCamKey, ImageKey, MethodKey, ModelKey, PredictKey, SweepKey
from .layers import LayerQuestions
from .messages import Failure, Notice, OfflineOffer, Saved, window_wording
from .planner import (
    ComputeAblatedInput,
    ComputeGradCam,
    ComputeMethod,
    ComputeSweep,
    LoadEngine,
    LoadModel,
    Predict,
    Request,
    Resize,
    Situation,
    layer_key,
    method_key,
    plan,
    sweep_key,
)
from .preview import Preview, PreviewResult, wants_preview
from .runner import JobContext, Runner
from .sources import ImageSource, bytes_source, file_source, sample_source
from .store import ResultStore

if TYPE_CHECKING:  # the engine imports torch: the document loads it in a job
    from PIL.Image import Image

    from ...engine.image import PreparedImage
    from ...engine.models import LoadedModel
    from ...engine.results import AblationSweep, GradCamResult, MethodMaps, Prediction
    from ...engine.session import Session

#: channels whose results belong to one prediction (dropped with it)
PREDICTION_CHANNELS = ("predict", "gradcam", "sweep", "ablated", "shapes", "export", "method",
                       "evaluate")
#: a method estimated to take longer than this waits for Compute (its cost is shown)
AUTO_RUN_SECONDS = 10.0


class Document:
    """One image with one model: choices, results, jobs, ablate mode and the preview."""

    def __init__(self, runner: Runner, model: ModelChoice | None = None,
                 analysis: AnalysisChoice | None = None, view: ViewChoice | None = None,
                 canvas_layer: str = ATTRIBUTION, opacity: dict[str, float] | None = None,
                 outline: bool = True, count_threads: bool = True) -> None:
        if not catalog.engine_ready() and catalog.engine_already_imported():
            # torch is imported already (tests, scripts): the rest of the engine at once,
            # without a job (``count_threads=False`` leaves torch's thread pool alone)
            catalog.load_engine(count_threads=count_threads)
        self.jobs = JobBook(runner)
        self.store = ResultStore()
        self.preview = Preview()
        # the user's choices
        default_model = default_model_choice()
        model = model or default_model
        if (model.architecture not in catalog.architectures()
                and not is_card_path(model.architecture)):
            model = default_model
        self.model_choice = model
        self.analysis = analysis or AnalysisChoice()
        self.view = (view or ViewChoice()).valid()
        self.canvas_layer = canvas_layer if canvas_layer in LAYER_LABELS else ATTRIBUTION
        self.opacity = dict(DEFAULT_OPACITY)
        self.opacity.update(opacity or {})
        self.outline = outline
        # layers shown under the chosen one (the Layers panel); the image is the base
        self.layer_visible = {name: name == IMAGE for name in LAYER_LABELS}
        self.target: int | None = None
        # what is loaded
        self.engine_ready = catalog.engine_ready()
        self.closing = False
        self.source: ImageSource | None = None
        self.pil: Image | None = None
        self.prepared: PreparedImage | None = None
        self.image_key: ImageKey | None = None
        self.model: LoadedModel | None = None
        self.model_key: ModelKey | None = None
        self.ablation = Ablation(self)
        self.evaluation = EvaluationDoc(self)
        self.layers = LayerQuestions(self)
        self._colors: tuple[Prediction, np.ndarray] | None = None
        self._confirmed: set[MethodKey] = set()  # costly results the user asked for
        #: a method estimated to take longer than this waits for Compute
        self.auto_run_seconds = AUTO_RUN_SECONDS
        #: segments of each kind in the prediction (``estimates.segment_count``)
        self.segment_counts: dict[tuple[PredictKey, str], int] = {}
        self._original: tuple[Image, np.ndarray] | None = None
        # what views listen to
        self.view_changed: Event[None] = Event()  # anything shown may have changed
        self.choices_changed: Event[None] = Event()  # the document changed a choice itself
        self.failed: Event[Failure] = Event()
        self.notice: Event[Notice] = Event()
        self.offline: Event[OfflineOffer] = Event()
        self.image_opened: Event[ImageSource] = Event()
        self.engine_loaded: Event[catalog.EngineInfo] = Event()
        self.ablate_mode_changed: Event[bool] = Event()
        self.saved: Event[Saved] = Event()
        self.predicted: Event[PredictKey] = Event()  # a full-size prediction arrived

    # ======================================================================= questions
    @property
    def session(self) -> Session | None:
        return self.store.session

    @property
    def prediction(self) -> Prediction | None:
        return self.store.prediction

    @property
    def predict_key(self) -> PredictKey | None:
        return self.store.predict_key

    @property
    def default_layer(self) -> str:
        """The layer Grad-CAM uses when none is chosen: the loaded model's, else the
        chosen architecture's."""
        if self.model is not None and self.model_key == self.model_choice.key:
            return self.model.default_layer
        arch = catalog.architectures().get(self.model_choice.architecture)
        return arch.default_layer if arch is not None else ""

    def original_rgb(self) -> np.ndarray | None:
        """The opened image at its own resolution (H x W x 3 uint8; made once)."""
        if self.pil is None or self.prepared is None:
            return None
        if self._original is None or self._original[0] is not self.pil:
            self._original = (self.pil, np.ascontiguousarray(np.asarray(self.pil.convert(
                "RGB"), dtype=np.uint8)))
        return self._original[1]

    def image_label(self) -> str:
        return self.source.display_path if self.source is not None else ""

    def is_running(self, channel: str) -> bool:
        return self.jobs.is_running(channel)

    def layer_key(self, analysis: AnalysisChoice | None = None) -> GradCamKey | None:
        """The key of the Grad-CAM pass the chosen layer method reads (planner.layer_key)."""
        if self.predict_key is None:
            return None
        return layer_key(self.predict_key, analysis or self.analysis,
                         self.store.gradcam_keys())

    def gradcam_for(self, analysis: AnalysisChoice | None = None) -> GradCamResult | None:
        key = self.layer_key(analysis)
        return self.store.gradcam(key) if key is not None else None

    def sweep_for(self, segments: str, baseline: str,
                  aggregation: str = "argmax") -> AblationSweep | None:
        """The ablation sweep computed for these choices, if any."""
        if self.predict_key is None:
            return None
        return self.store.sweep(SweepKey(self.predict_key, segments, baseline, aggregation))

    def method_key(self, analysis: AnalysisChoice | None = None) -> MethodKey | None:
        """The key of the chosen other method's maps (planner.method_key)."""
        analysis = analysis or self.analysis
        if self.predict_key is None or analysis.method not in OTHER_METHODS:
            return None
        return method_key(self.predict_key, analysis)

    def method_for(self, analysis: AnalysisChoice | None = None) -> MethodMaps | None:
        """The chosen other method's maps, if computed."""
        key = self.method_key(analysis)
        return self.store.method(key) if key is not None else None

    def has_result(self, method: str | None = None) -> bool:
        """Whether the result ``method`` needs (default: the chosen one) is computed."""
        if self.predict_key is None:
            return False
        method = method or self.analysis.method
        if method in LAYER_METHODS:
            return self.gradcam_for() is not None
        if method in OTHER_METHODS:
            return self.store.has(method_key(self.predict_key, self.analysis, method))
        return self.store.sweep(sweep_key(self.predict_key, self.analysis)) is not None

    def estimate(self, analysis: AnalysisChoice | None = None) -> MethodEstimate | None:
        """The chosen method's cost for this image and every predicted class, before it
        runs (forward and backward passes, and a time from the prediction's own pass)."""
        return estimate_method(self, analysis or self.analysis)

    def class_colors(self) -> np.ndarray:
        """The model's class colours (C x 3 uint8: its palette, else VOC's), the one place
        every view takes them from."""
        prediction = self.prediction
        if prediction is None:
            from ...render import class_colors

            return class_colors(21)
        if self._colors is None or self._colors[0] is not prediction:
            self._colors = (prediction, prediction.colors)  # made once per prediction
        return self._colors[1]

    def situation(self) -> Situation:
        stored: set[Any] = set()
        auto = True
        if self.predict_key is not None:
            p, a = self.predict_key, self.analysis
            candidates: list[Any] = [sweep_key(p, a), *self.store.gradcam_keys()]
            if a.method in OTHER_METHODS:
                candidates.append(method_key(p, a))
                estimate = self.estimate()
                auto = estimate is None or estimate.automatic
            if self.target is not None:
                candidates.append(AblatedKey(p, a.segments, a.baseline, self.target))
            stored = {k for k in candidates if self.store.has(k)}
        return Situation(
            engine_ready=self.engine_ready, model_choice=self.model_choice,
            analysis=self.analysis, canvas_layer=self.canvas_layer, target=self.target,
            ablate_mode=self.ablation.active, loaded_model=self.model_key,
            source=self.source.key if self.source is not None and self.pil is not None
            else None,
            loaded_image=self.image_key, predict_key=self.predict_key,
            stored=frozenset(stored), method_auto=auto, confirmed=frozenset(self._confirmed))

    # ======================================================================= choices
    def changed(self) -> None:
        """Tell the views to show the document again (never starts a job)."""
        if not self.closing:
            self.view_changed.emit(None)

    def set_model_choice(self, choice: ModelChoice) -> None:
        if choice == self.model_choice:
            return
        old = self.model_choice
        self.model_choice = choice
        self.jobs.unblock("model")
        if choice.architecture != old.architecture and self.analysis.layer:
            self.analysis = replace(self.analysis, layer="")  # the old path means nothing here
            self.choices_changed.emit(None)
        self.schedule()

    def set_analysis(self, choice: AnalysisChoice) -> None:
        if choice == self.analysis:
            return
        if choice.layer and choice.layer != self.analysis.layer:
            refusal = self.layers.refusal(choice.layer)
            if refusal is not None:  # refused in one line, before any work
                self.failed.emit(Failure("layer", refusal))
                self.choices_changed.emit(None)  # the panel shows the layer in use
                return
        self.analysis = choice
        self.jobs.unblock("gradcam", "sweep", "ablated", "method")
        self.ablation.on_analysis_changed()
        self.schedule()

    def update_analysis(self, **changes: Any) -> None:
        self.set_analysis(replace(self.analysis, **changes))

    def set_view(self, choice: ViewChoice) -> None:
        """View-only choices: redraw at once, never a job."""
        valid = choice.valid()
        corrected = valid != choice
        if valid == self.view and not corrected:
            return
        self.view = valid
        if corrected:
            self.choices_changed.emit(None)
        self.changed()

    def update_view(self, **changes: Any) -> None:
        self.set_view(replace(self.view, **changes))

    def set_target(self, cls: int | None) -> None:
        """Make ``cls`` the explained class (view-only once the results exist)."""
        if cls == self.target:
            return
        self.target = cls
        self.schedule()

    def set_canvas_layer(self, layer: str) -> None:
        """Show one canvas layer: image, segmentation, explanation or ablated input."""
        if layer not in LAYER_LABELS:
            raise ValueError(f"unknown layer {layer!r}")
        self.canvas_layer = layer
        self.schedule()

    def set_opacity(self, value: float, layer: str | None = None) -> None:
        self.opacity[layer or self.canvas_layer] = min(1.0, max(0.0, float(value)))
        self.changed()

    def set_layer_visible(self, layer: str, on: bool) -> None:
        """Show ``layer`` under the chosen one (the image: the base) or not; view-only."""
        if layer not in LAYER_LABELS:
            raise ValueError(f"unknown layer {layer!r}")
        self.layer_visible[layer] = bool(on)
        self.changed()

    def set_outline(self, on: bool) -> None:
        self.outline = bool(on)
        self.changed()

    # ======================================================================= the engine
    def load_engine(self) -> None:
        """Import torch and the engine in the 'startup' job (once; never on this thread)."""
        if self.engine_ready or self.closing:
            return
        info = catalog.engine_info()
        if info is not None:  # loaded by a job whose answer was cancelled
            self._on_engine_loaded(info)
            return
        if self.jobs.is_running("startup") or self.jobs.runner.is_busy("startup"):
            return
        self.jobs.request("startup", "startup", catalog.load_engine,
                          lambda info: self._on_engine_loaded(info),  # type: ignore[arg-type]
                          self._on_engine_error, label="Loading PyTorch...",
                          uses_model=False, force=True)
        self.notice.emit(Notice("Loading PyTorch..."))

    def _on_engine_loaded(self, info: catalog.EngineInfo) -> None:
        if self.engine_ready:
            return
        self.engine_ready = True
        if self.model_choice.device == catalog.AUTO_DEVICE:  # now known: the best one
            self.model_choice = replace(self.model_choice, device=catalog.devices()[0])
        self.notice.emit(Notice(f"PyTorch loaded in {info.import_seconds:.1f} s.", 4000))
        self.engine_loaded.emit(info)
        if self.source is not None:
            self.schedule()  # an image opened meanwhile: its model may be downloaded
        else:
            self.preload_model()

    def _on_engine_error(self, message: str, details: str) -> None:
        self.failed.emit(Failure("startup", f"PyTorch could not be loaded: {message}", details))

    def preload_model(self) -> None:
        """Load the model before an image is opened, unless that means a download."""
        if self.model is not None or self.closing or not self.engine_ready:
            return
        if catalog.weights_at_hand(self.model_choice.architecture, self.model_choice.weights):
            self.schedule()  # downloads start when an image needs the model

    # ======================================================================= images
    def open_image(self, path: str | Path) -> None:
        """Open an image file (it replaces the current one once it has loaded)."""
        self.open_source(file_source(path))

    def open_image_bytes(self, data: bytes, label: str = "<clipboard>") -> None:
        self.open_source(bytes_source(data, label))

    def open_sample_image(self) -> None:
        self.open_source(sample_source())

    def open_source(self, source: ImageSource) -> None:
        size = self.model_choice.size
        key = ImageKey(source.key, size)

        def job(state: JobContext) -> tuple[Image, PreparedImage]:
            from ...engine.image import preprocess

            pil = source.load()
            state.set_progress(1, 2, "Preparing the image")
            return pil, preprocess(pil, size)

        self.jobs.unblock("image")
        self.submit("image", key, job, lambda result: self._on_image_loaded(source, key, result),
                    label=f"Opening {source.label}", uses_model=False)

    def _on_image_loaded(self, source: ImageSource, key: ImageKey, result: object) -> None:
        pil, prepared = cast("tuple[Image, PreparedImage]", result)
        new_image = self.source is None or source.key != self.source.key
        self.source, self.pil, self.prepared, self.image_key = source, pil, prepared, key
        self._clear_prediction()
        if new_image:
            self.image_opened.emit(source)

    def _resize(self, key: ImageKey, force: bool) -> None:
        pil, source = self.pil, self.source
        assert pil is not None and source is not None

        def job(state: JobContext) -> tuple[Image, PreparedImage]:
            from ...engine.image import preprocess

            return pil, preprocess(pil, key.size)

        self.submit("image", key, job, lambda result: self._on_image_loaded(source, key, result),
                    label="Resizing the image", uses_model=False, force=force)

    # ======================================================================= scheduling
    def schedule(self, force: bool = False) -> None:
        """Ask for whatever the current choices need and is not computed; then redraw.

        ``force`` retries work that failed or was cancelled with the same choices.
        """
        if self.closing:
            return
        for request in plan(self.situation()):
            self._start(request, force)
        self.changed()

    def compute(self) -> None:
        """Run what the current view needs, even if it failed or was cancelled before, or
        if it is costly (its cost was shown: pressing Compute accepts it)."""
        key = self.method_key()
        if key is not None:
            self._confirmed.add(key)
        self.schedule(force=True)

    def submit(self, channel: str, key: Hashable, fn: Callable[[JobContext], object],
               on_result: Callable[[object], object], *, label: str, uses_model: bool = True,
               lends_model: bool = False, force: bool = False,
               on_partial: Callable[[object], object] | None = None) -> bool:
        """Run ``fn`` on ``channel``; its result goes to ``on_result``, then the document
        plans again (a result may make another job possible) and redraws."""
        def result(value: object) -> None:
            on_result(value)
            self.schedule()

        # jobs of one model run one at a time; another model's do not wait for them
        return self.jobs.request(
            channel, key, fn, result, lambda m, d: self._on_job_error(channel, key, m, d),
            label=label, uses_model=uses_model, lends_model=lends_model, force=force,
            on_partial=on_partial, lock_key=self.model_key if uses_model else None)

    def _start(self, request: Request, force: bool) -> None:
        if isinstance(request, LoadEngine):
            self.load_engine()
        elif isinstance(request, LoadModel):
            self._load_model(request.key, force)
        elif isinstance(request, Resize):
            self._resize(request.key, force)
        elif isinstance(request, Predict):
            self._predict(request, force)
        elif isinstance(request, ComputeGradCam):
            self._gradcam(request.key, force)
        elif isinstance(request, ComputeSweep):
            self._sweep(request.key, force)
        elif isinstance(request, ComputeAblatedInput):
            self._ablated_input(request.key, force)
        elif isinstance(request, ComputeMethod):
            self._method(request.key, force)

    def _on_job_error(self, channel: str, key: Hashable, message: str, details: str) -> None:
        message = window_wording(message)
        if channel == "predict":
            self._clear_preview()
        if channel == "model":
            self._show_loaded_model()
        if channel == "model" and isinstance(key, ModelKey) and self._offline(key, message):
            self.changed()
            return
        self.failed.emit(Failure(channel, message, details))
        self.changed()

    def _show_loaded_model(self) -> None:
        """A model failed to load: the choices go back to the model that is loaded (its
        results are the ones shown), so that no control names what is not there."""
        loaded = self.model_key
        if loaded is None or self.model_choice.key == loaded:
            return
        self.model_choice = replace(self.model_choice, architecture=loaded.architecture,
                                    weights=loaded.weights, device=loaded.device)
        self.choices_changed.emit(None)

    def _offline(self, key: ModelKey, message: str) -> bool:
        """Default weights that are not cached and could not be fetched: offer a way on."""
        from ...engine.models import ARCHITECTURES
        from ...engine.weights import cached_weights_path

        arch = ARCHITECTURES.get(key.architecture)
        if key.weights != "default" or arch is None:
            return False
        path = cached_weights_path(arch)
        if path is not None and path.is_file():
            return False
        self.offline.emit(OfflineOffer(key.architecture, message))
        return True

    # ======================================================================= cancelling
    def cancel_channel(self, channel: str) -> None:
        """Cancel one channel's job (its result, if any, is dropped)."""
        self.jobs.cancel(channel)
        if channel == "predict":
            self._clear_preview()

    def cancel_all(self) -> None:
        """Cancel every running computation (Esc / the status bar's Cancel)."""
        if not self.jobs.busy():
            return
        self.jobs.cancel_all()
        self._clear_preview()
        if not self.engine_ready:  # loading torch is never cancelled: start it again
            self.jobs.unblock("startup")
            self.load_engine()
        self.notice.emit(Notice("Cancelled. Press Compute (Ctrl+R) to run it again.", 5000))
        self.changed()

    def escape(self) -> None:
        """Esc: in ablate mode with a selection, back to the original; else cancel jobs."""
        if not (self.ablation.can_reset() and self.ablation.reset()):
            self.cancel_all()

    def close(self) -> None:
        self.closing = True

    # ======================================================================= the jobs
    def _load_model(self, key: ModelKey, force: bool) -> None:
        def job(state: JobContext) -> LoadedModel:
            from ...engine.models import load_model

            return load_model(key.architecture, key.weights, key.device, state=state)

        self.submit("model", key, job, lambda model: self._on_model_loaded(key, model),
                    label=f"Loading {Path(key.architecture).name}", uses_model=False,
                    force=force)

    def _on_model_loaded(self, key: ModelKey, model: object) -> None:
        self.model, self.model_key = cast("LoadedModel", model), key
        self._clear_prediction()

    def _predict(self, request: Predict, force: bool) -> None:
        model, prepared, pil = self.model, self.prepared, self.pil
        assert model is not None and prepared is not None and pil is not None
        analysis, key = self.analysis, request.key
        with_gradcam = request.gradcam is not None
        precision = key.precision

        def full(state: JobContext) -> object:
            from ...engine.session import Session

            session = Session(model, prepared, precision=precision)
            if not with_gradcam:
                return session, session.predict(state), None
            from ...engine.aggregation import Aggregation

            gradcam = session.gradcam(None, layer=analysis.layer or None,
                                      aggregation=Aggregation(analysis.aggregation),
                                      upsample=analysis.upsample, state=state)
            return session, session.predict(state), gradcam

        job: Callable[[JobContext], object] = full
        if wants_preview(model, prepared.size):  # a slow device: a quick look first
            job = self.preview.wrap(full, model, pil, analysis, key, prepared.size)
        if self.submit("predict", key, job, lambda result: self._on_predicted(request, result),
                       label="Predicting", force=force, on_partial=self._on_preview):
            self.preview.expect(self.jobs.request_id("predict"), key)

    def _on_preview(self, result: object) -> None:
        assert isinstance(result, PreviewResult)
        if self.preview.accept(self.jobs.request_id("predict"), result):
            self.notice.emit(Notice(result.note + "."))
            self.changed()

    def _on_predicted(self, request: Predict, result: object) -> None:
        session, prediction, gradcam = cast(
            "tuple[Session, Prediction, GradCamResult | None]", result)
        had_preview = self._clear_prediction(full_size_arrived=True)
        self.store.set_prediction(request.key, session, prediction)
        self.ablation.restore(request.key)
        if gradcam is not None and request.gradcam is not None:
            self.store.put(request.gradcam, gradcam)  # from the prediction's own pass
        present = prediction.present_classes
        if self.target not in present:
            self.target = default_target(present)
        if had_preview is not None:
            self.notice.emit(Notice(f"Showing the full-size result ({had_preview.full_size} "
                                    "px).", 5000))
        self.predicted.emit(request.key)

    def _gradcam(self, key: GradCamKey, force: bool) -> None:
        session = self.session
        assert session is not None

        def job(state: JobContext) -> GradCamResult:
            from ...engine.aggregation import Aggregation

            return session.gradcam(None, layer=key.layer or None,
                                   aggregation=Aggregation(key.aggregation),
                                   upsample=key.upsample, state=state)

        self.submit("gradcam", key, job, lambda value: self.store.put(key, value),
                    label="Grad-CAM for every class", force=force)

    def _sweep(self, key: SweepKey, force: bool) -> None:
        session, prediction = self.session, self.prediction
        assert session is not None and prediction is not None
        class_map = prediction.class_map

        def job(state: JobContext) -> AblationSweep:
            from ...engine.aggregation import Aggregation
            from ...engine.segments import make_segments

            segments = make_segments(class_map, key.segments)
            return session.sweep(segments, baseline=key.baseline,
                                 aggregation=Aggregation(key.aggregation), state=state)

        self.submit("sweep", key, job, lambda value: self.store.put(key, value),
                    label="Ablation sweep", lends_model=True, force=force)

    def _method(self, key: MethodKey, force: bool) -> None:
        session, analysis = self.session, self.analysis
        assert session is not None
        options = analysis.method_options()
        gkey = layer_key(key.predict, analysis, self.store.gradcam_keys())
        gradcam = self.store.gradcam(gkey)  # Guided Grad-CAM reuses the Grad-CAM pass
        info = get_method(key.method)

        def job(state: JobContext) -> MethodMaps:
            from ...engine.attribution import compute

            return compute(session, key.method, None, options, state=state, gradcam=gradcam)

        # perturbation methods run plain forward passes: a click may borrow the model
        self.submit("method", key, job, lambda value: self.store.put(key, value),
                    label=f"{METHOD_LABELS[key.method]} for every class",
                    lends_model=info.perturbation, force=force)

    def request_sweep(self, segments: str, baseline: str) -> None:
        """Run the argmax-masked sweep for these segments and baseline (serves clicks)."""
        if self.predict_key is None:
            return
        key = SweepKey(self.predict_key, segments, baseline, "argmax")
        if not self.store.has(key):
            self._sweep(key, force=True)
        self.changed()

    def _ablated_input(self, key: AblatedKey, force: bool) -> None:
        session, prediction = self.session, self.prediction
        assert session is not None and prediction is not None
        class_map = prediction.class_map

        def job(state: JobContext) -> object:
            from ...engine.image import denormalize
            from ...engine.segments import make_segments

            segments = make_segments(class_map, key.segments)
            ids = [s.id for s in segments.info if s.class_index == key.target]
            return denormalize(session.ablated_input(segments, ids, baseline=key.baseline))

        self.submit("ablated", key, job, lambda value: self.store.put(key, value),
                    label="Ablating the target", uses_model=False, force=force)

    # ======================================================================= clearing
    def _clear_preview(self) -> PreviewResult | None:
        had = self.preview.clear()
        if had is not None:
            self.notice.emit(Notice("", replaces=had.note + "."))
        return had

    def _clear_prediction(self, full_size_arrived: bool = False) -> PreviewResult | None:
        had = self.preview.clear() if full_size_arrived else self._clear_preview()
        if had is not None and full_size_arrived:
            self.notice.emit(Notice("", replaces=had.note + "."))
        self.jobs.forget(lambda channel: channel in PREDICTION_CHANNELS
                         and not (full_size_arrived and channel == "predict"))
        self.store.clear()
        self.ablation.clear()
        self._confirmed.clear()
        self.segment_counts.clear()
        return had

