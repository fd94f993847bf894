"""The analysis document: the states it composes, the results, and the jobs.

One walk through it: a panel edits a field of its state (``doc.analysis.method = "ig"``);
the state announces what changed; the document asks :func:`.planner.plan` what the
choices now need, and the job table (``jobs``) runs those requests; results land in the
:class:`.store.ResultStore`; and at the end of the action every topic that changed
(``analysis.method``, ``jobs.method``, ``results.method``...) is announced once
(``updates.announced``), on which each panel's view is computed again if it depends on
one of them (``presenting``). The document does not relay its states: it reacts to them.
Nothing here imports Qt; tests drive it with :class:`.runner.QueueRunner`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from ...engine.cards import is_card_path
from . import catalog
from .ablation import AblationState
from .choices import (
    ATTRIBUTION,
    AnalysisChoice,
    ModelChoice,
    ViewChoice,
    default_model_choice,
    default_target,
)
from .comparison import CHANNEL as COMPARE
from .comparison import ComparisonState
from .dataset import DatasetState, OpenRequest
from .estimates import MethodEstimate, estimate_method
from .evaluation import EvaluationState
from .events import Change, Event, Updates
from .explain_jobs import (
    ablated_input_job,
    gradcam_job,
    load_model_job,
    method_job,
    open_image_job,
    predict_job,
    resize_job,
    sweep_job,
)
from .jobbook import JobBook
from .jobtable import Job, JobTable
from .keys import ImageKey, MethodKey, ModelKey
from .messages import Failure, Notice, OfflineOffer, Saved
from .model_layers import ModelLayers
from .planner import Situation, plan
from .preview import Preview, PreviewResult
from .requests import (
    ComputeAblatedInput,
    ComputeGradCam,
    ComputeMethod,
    ComputeSweep,
    LoadEngine,
    LoadModel,
    OpenImage,
    Predict,
    Resize,
    WriteFile,
)
from .results import ablated_key, kind_of, method_key
from .runner import Runner
from .states import AnalysisState, ImageState, LayersState, ModelState, ViewState
from .store import ResultStore

if TYPE_CHECKING:  # the engine imports torch: the document loads it in a job
    from PIL.Image import Image

    from ...engine.image import PreparedImage
    from ...engine.models import LoadedModel
    from ...engine.results import GradCamResult, Prediction
    from ...engine.session import Session

class Announces(Protocol):
    """A part of the document: it says what changed."""

    @property
    def changed(self) -> Event[Change]: ...


A = TypeVar("A", bound=Announces)

#: channels whose results belong to one prediction (dropped with it)
PREDICTION_CHANNELS = ("predict", "gradcam", "sweep", "ablated", "shapes", "export", "method",
                       "evaluate", COMPARE, "replay")
#: the fields of each state whose change asks the planner again
REPLANS = {
    "model": {"architecture", "weights", "device", "size", "precision"},
    "image": {"wanted"},
    "analysis": {"method", "layer", "aggregation", "upsample", "segments", "baseline",
                 "n_steps", "ig_method", "window", "stride", "n_samples", "shapley_mode",
                 "auto_run_seconds"},
    "view": {"target"},
    "layers": {"chosen"},
    "ablation": {"active", "selection", "precompute"},
    "evaluation": {"wanted"},
    "model_layers": {"audit_wanted"},
    "comparison": {"active", "selection"},
    "comparison.model": {"architecture", "weights", "size"},
}


class Document:
    """One image with one model: its states, results and jobs (see the module's walk)."""

    def __init__(self, runner: Runner, model: ModelChoice | None = None,
                 analysis: AnalysisChoice | None = None, view: ViewChoice | None = None,
                 canvas_layer: str = ATTRIBUTION, opacity: dict[str, float] | None = None,
                 outline: bool = True, count_threads: bool = True) -> None:
        if not catalog.engine_ready() and catalog.engine_already_imported():
            # torch is imported already (tests, scripts): the rest of the engine at once,
            # without a job (``count_threads=False`` leaves torch's thread pool alone)
            catalog.load_engine(count_threads=count_threads)
        default_model = default_model_choice()
        model = model or default_model
        if (model.architecture not in catalog.architectures()
                and not is_card_path(model.architecture)):
            model = default_model
        self.updates = Updates()
        # the states (one per concern), the results and the jobs: each announces its changes
        self.model = self._compose(ModelState(model))
        self.jobs = self._compose(JobTable(JobBook(runner), self.updates,
                                           lambda: self.model.loaded_key))
        self.image = self._compose(ImageState())
        self.store = self._compose(ResultStore(lambda: self.analysis.choice))
        self.model_layers = self._compose(ModelLayers(self.model, self.store, self.jobs))
        self.analysis = self._compose(AnalysisState(analysis or AnalysisChoice(),
                                                    self.model_layers))
        self.view = self._compose(ViewState(view or ViewChoice()))
        self.layers = self._compose(LayersState(canvas_layer, opacity, outline))
        self.preview = self._compose(Preview())
        self.ablation = self._compose(AblationState(self.store, self.jobs, self.analysis,
                                                    self.layers, self.updates))
        self.evaluation = self._compose(EvaluationState(self.store, self.jobs, self.analysis,
                                                        self.model, self.image))
        self.dataset = self._compose(DatasetState(self.jobs))
        self.comparison = self._compose(ComparisonState(
            self.store, self.jobs, self.model, self.image, self.analysis, self.view,
            self.ablation, self.updates))
        self._compose(self.comparison.model)  # model B: its changes are announced too
        self.engine_ready = catalog.engine_ready()
        self.closing = False
        self._confirmed: set[MethodKey] = set()  # costly results the user asked for
        # what views hear besides the states' changes
        self.failed: Event[Failure] = self.jobs.failed
        self.notice: Event[Notice] = Event()
        self.offline: Event[OfflineOffer] = Event()
        self.engine_loaded: Event[catalog.EngineInfo] = Event()
        self.saved: Event[Saved] = Event()
        self.predicted: Event[Any] = Event()  # a full-size prediction arrived (its key)
        self.analysis.refused.connect(lambda why: self.failed.emit(Failure("layer", why)))
        self._register_jobs()
        self.jobs.after_result.append(self.schedule)

    # ======================================================================= reacting
    def _compose(self, part: A) -> A:
        """Take ``part`` in: its changes are announced, and may ask for work (REPLANS)."""
        part.changed.connect(self._on_change)
        return part

    def _on_change(self, change: Change) -> None:
        """A state changed: announce it, and plan again if the choices need other work."""
        with self.updates.batch():
            self.updates.add(change.topics)
            if change.state == "model" and "memory_gib" in change.fields:
                self._apply_budget()
            fields = change.fields & REPLANS.get(change.state, set())
            if not fields or self.closing:
                return
            if change.state == "model":
                self.jobs.unblock("model")
                if "architecture" in fields and self.analysis.layer:
                    self.analysis.layer = ""  # the old path means nothing here
            elif change.state == "image":
                self.jobs.unblock("image")
            elif change.state == "analysis":
                self.jobs.unblock("gradcam", "sweep", "ablated", "method")
                self.ablation.follow_analysis()
            elif change.state == "model_layers":
                self.jobs.unblock("shapes")
            elif change.state.startswith("comparison"):
                self.jobs.unblock(COMPARE)
            elif fields == {"selection"} and self.ablation.wanted() is None:
                return  # answered at once (the history, the sweep): nothing to plan
            self.schedule()

    def situation(self) -> Situation:
        store, analysis = self.store, self.analysis.choice
        stored: set[Any] = set()
        auto = True
        predict = store.predict_key
        if predict is not None:
            kind = kind_of(analysis.method)
            candidates: list[Any] = [kind.key(predict, analysis, store.gradcam_keys()),
                                     *store.gradcam_keys(), self.ablation.precompute_key(),
                                     self.evaluation.planned()]
            if kind.costed:
                estimate = self.estimate()
                auto = estimate is None or estimate.automatic
            if self.view.target is not None:
                candidates.append(ablated_key(predict, analysis, self.view.target))
            stored = {k for k in candidates if k is not None and store.has(k)}
        image, audit = self.image, self.model_layers.audit_wanted
        loaded = image.source.key if image.source is not None and image.pil is not None \
            else None
        opening = image.wanted.key if image.wanted is not None and (
            image.source is None or image.wanted.key != image.source.key) else None
        return Situation(
            engine_ready=self.engine_ready, model_choice=self.model.choice,
            analysis=analysis, canvas_layer=self.layers.chosen, target=self.view.target,
            ablate_mode=self.ablation.active, loaded_model=self.model.loaded_key,
            source=loaded, loaded_image=image.key, predict_key=predict,
            stored=frozenset(stored), method_auto=auto, confirmed=frozenset(self._confirmed),
            opening=opening, ablation=self.ablation.wanted(),
            precompute=self.ablation.precompute_key(), evaluation=self.evaluation.planned(),
            audit=audit if audit is not None and store.audit(audit) is None else None)

    def _apply_budget(self) -> None:
        """A new memory budget (Preferences) applies to the sessions already made too:
        their next chunks are sized under it (results do not depend on it)."""
        second = self.comparison.second
        for session in (self.store.session, second.session if second is not None else None):
            if session is not None:
                session.budget = self.model.budget(session.model.device)

    def estimate(self) -> MethodEstimate | None:
        """The chosen method's cost for this image and every class, before it runs."""
        return estimate_method(self.store, self.analysis.choice,
                               self.analysis.auto_run_seconds)

    # ======================================================================= scheduling
    def schedule(self, force: bool = False) -> None:
        """Ask for whatever the current choices need and is not computed.

        ``force`` retries work that failed or was cancelled with the same choices.
        """
        if self.closing:
            return
        with self.updates.batch():
            for request in plan(self.situation()):
                if isinstance(request, LoadEngine):
                    self.load_engine()
                else:
                    self.jobs.start(request, force)
            self.comparison.schedule(force)

    def compute(self) -> None:
        """Run what the current view needs, even if it failed or was cancelled before, or
        if it is costly (its cost was shown: pressing Compute accepts it)."""
        predict, analysis = self.store.predict_key, self.analysis.choice
        if predict is not None and kind_of(analysis.method).costed:
            self._confirmed.add(method_key(predict, analysis))
        self.schedule(force=True)

    def cancel_all(self) -> None:
        """Cancel every running computation (Esc / the status bar's Cancel)."""
        if not self.jobs.busy():
            return
        with self.updates.batch():
            self.jobs.cancel_all()
            self._clear_preview()
            if not self.engine_ready:  # loading torch is never cancelled: start it again
                self.jobs.unblock("startup")
                self.load_engine()
            self.notice.emit(Notice("Cancelled. Press Compute (Ctrl+R) to run it again.",
                                    5000))

    def escape(self) -> None:
        """Esc: in ablate mode with a selection, back to the original; else cancel jobs."""
        if self.comparison.can_reset():
            self.comparison.reset()
        elif not (self.ablation.can_reset() and self.ablation.reset()):
            self.cancel_all()

    def close(self) -> None:
        self.closing = True
        self.updates.closed = True

    def open_request(self, request: OpenRequest) -> None:
        """Open an image of a batch with the batch's model and options, on this device."""
        with self.updates.batch():
            self.model.set(replace(request.model, device=self.model.device))
            self.analysis.set(request.analysis)
            self.image.open(request.path)
            if request.target is not None:
                self.view.target = request.target
            if request.compare_with is not None:  # batch --with: compared with B again
                self.comparison.open(replace(request.compare_with, device=self.model.device))
                if request.compare_target is not None:
                    self.comparison.target = request.compare_target

    # ======================================================================= the engine
    def load_engine(self) -> None:
        """Import torch and the engine in the 'startup' job (once; never on this thread)."""
        if self.engine_ready or self.closing:
            return
        info = catalog.engine_info()
        if info is not None:  # loaded by a job whose answer was cancelled
            self._on_engine_loaded(LoadEngine(), info)
            return
        if self.jobs.is_running("startup") or self.jobs.book.runner.is_busy("startup"):
            return
        self.jobs.start(LoadEngine(), force=True)
        self.notice.emit(Notice("Loading PyTorch..."))

    def _on_engine_loaded(self, request: LoadEngine, info: catalog.EngineInfo) -> None:
        if self.engine_ready:
            return
        self.engine_ready = True
        devices = catalog.devices()
        if self.model.device not in devices:  # 'auto' is now known: the best one
            self.model.device = (devices[0] if self.model.device == catalog.AUTO_DEVICE
                                 else "cpu")
        self.notice.emit(Notice(f"PyTorch loaded in {info.import_seconds:.1f} s.", 4000))
        self.engine_loaded.emit(info)
        self.updates.add({"engine.loaded"})
        if self.image.source is not None or self.image.wanted is not None:
            self.schedule()  # an image opened meanwhile: its model may be downloaded
        else:
            self.preload_model()

    def _on_engine_error(self, request: LoadEngine, message: str, details: str) -> bool:
        self.failed.emit(Failure("startup", f"PyTorch could not be loaded: {message}",
                                 details))
        return True

    def preload_model(self) -> None:
        """Load the model before an image is opened, unless that means a download."""
        if self.model.loaded is not None or self.closing or not self.engine_ready:
            return
        if catalog.weights_at_hand(self.model.architecture, self.model.weights):
            self.schedule()  # downloads start when an image needs the model

    # ======================================================================= the jobs
    def _register_jobs(self) -> None:
        jobs, store = self.jobs, self.store
        jobs.register(LoadEngine, lambda r: Job(catalog.load_engine, "Loading PyTorch...",
                                                uses_model=False),
                      done=self._on_engine_loaded, failed=self._on_engine_error)
        jobs.register(LoadModel, load_model_job, done=self._on_model_loaded,
                      failed=self._on_model_failed)
        jobs.register(OpenImage, self._open_image_job, done=self._on_image_loaded,
                      failed=self._on_image_failed)
        jobs.register(Resize, self._resize_job, done=self._on_image_loaded)
        jobs.register(Predict, self._predict_job, done=self._on_predicted,
                      failed=self._on_predict_stopped, cancelled=self._on_predict_stopped,
                      started=lambda request: self.preview.expect(
                          self.jobs.request_id("predict"), request.key))
        jobs.register(ComputeGradCam, lambda r: gradcam_job(r, self._session()),
                      done=self._store_result)
        jobs.register(ComputeSweep, lambda r: sweep_job(r, self._session(),
                                                        self._prediction()),
                      done=self._store_result, cancelled=self._on_sweep_cancelled)
        jobs.register(ComputeMethod, lambda r: method_job(
            r, self._session(), self.analysis.choice, store.gradcam_for()),
            done=self._store_result)
        jobs.register(ComputeAblatedInput, lambda r: ablated_input_job(
            r, self._session(), self._prediction()), done=self._store_result)
        jobs.register(WriteFile, lambda r: Job(r.write, r.label, uses_model=False),
                      done=lambda r, path: self.saved.emit(Saved(r.message(Path(str(path))),
                                                                 Path(str(path)))))

    def _session(self) -> Session:
        assert self.store.session is not None
        return self.store.session

    def _prediction(self) -> Prediction:
        assert self.store.prediction is not None
        return self.store.prediction

    def _store_result(self, request: Any, value: object) -> None:
        self.store.put(request.key, value)

    def _on_model_loaded(self, request: LoadModel, model: LoadedModel) -> None:
        previous = self.model.loaded
        with self.updates.batch():
            self.model.update(loaded=model, loaded_key=request.key)
            if previous is None or previous.categories != model.categories:
                self.layers.hidden_classes = frozenset()  # they named the old classes
            self._clear_prediction()

    def _on_model_failed(self, request: LoadModel, message: str, details: str) -> bool:
        """The choices go back to the model that is loaded (its results are the ones
        shown), so that no control names what is not there; default weights that are not
        cached and could not be fetched: another way on is offered."""
        loaded, image = self.model.loaded_key, self.image.key
        if loaded is not None and self.model.choice.key != loaded:
            # the size too (a card's own): the image was not resized for the refused model
            size = image.size if image is not None else self.model.size
            self.model.update(architecture=loaded.architecture, weights=loaded.weights,
                              device=loaded.device, size=size)
        return self._offline(request.key, message)

    def _offline(self, key: ModelKey, message: str) -> bool:
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

    def _open_image_job(self, request: OpenImage) -> Job:
        source = self.image.wanted
        assert source is not None and source.key == request.key.source
        return open_image_job(source, request.key)

    def _resize_job(self, request: Resize) -> Job:
        assert self.image.pil is not None
        return resize_job(self.image.pil, request.key)

    def _on_image_loaded(self, request: OpenImage | Resize, result: object) -> None:
        pil, prepared = cast("tuple[Image, PreparedImage]", result)
        image = self.image
        source = image.wanted if isinstance(request, OpenImage) else image.source
        if source is None or source.key != request.key.source:
            return  # another image was asked for since
        new_image = image.source is None or source.key != image.source.key
        with self.updates.batch():
            image.update(source=source, pil=pil, prepared=prepared,
                         key=ImageKey(source.key, request.key.size))
            self._clear_prediction()
            if new_image:
                image.opened.emit(source)

    def _on_image_failed(self, request: OpenImage, message: str, details: str) -> bool:
        if self.image.wanted is not None and self.image.wanted.key == request.key.source:
            self.image.wanted = self.image.source  # the image shown stays; so do its choices
        return False

    def _predict_job(self, request: Predict) -> Job:
        model, prepared, pil = self.model.loaded, self.image.prepared, self.image.pil
        assert model is not None and prepared is not None and pil is not None
        return predict_job(request, model, prepared, pil, self.analysis.choice, self.preview,
                           self._on_preview, self.model.budget(model.device))

    def _on_preview(self, result: object) -> None:
        assert isinstance(result, PreviewResult)
        if self.preview.accept(self.jobs.request_id("predict"), result):
            self.notice.emit(Notice(result.note + "."))

    def _on_predict_stopped(self, request: Predict, *_failure: str) -> bool:
        self._clear_preview()
        return False

    def _on_predicted(self, request: Predict, result: object) -> None:
        session, prediction, gradcam = cast(
            "tuple[Session, Prediction, GradCamResult | None]", result)
        had_preview = self._clear_prediction(full_size_arrived=True)
        self.store.set_prediction(request.key, session, prediction)
        self.ablation.restore(request.key)
        if gradcam is not None and request.gradcam is not None:
            self.store.put(request.gradcam, gradcam)  # from the prediction's own pass
        present = prediction.present_classes
        if self.view.target not in present:
            self.view.target = default_target(present, background=not prediction.multilabel)
        if had_preview is not None:
            self.notice.emit(Notice(f"Showing the full-size result ({had_preview.full_size} "
                                    "px).", 5000))
        self.predicted.emit(request.key)

    def _on_sweep_cancelled(self, request: ComputeSweep) -> None:
        if request.key == self.ablation.precompute_key():
            self.ablation.precompute = None  # asked for once: Precompute asks again

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
        return had
