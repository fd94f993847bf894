"""The whole seed analysis for an image, as one call shared by the CLI and the GUI."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from .aggregation import Aggregation
from .baselines import parse_baseline
from .budget import check_setting, resolve_budget
from .catalog import DEFAULT_METHODS
from .devices import describe_device
from .errors import UserError
from .image import PreparedImage, load_image, preprocess
from .jobs import JobState, check_cancelled
from .layers import normalize_layer_path
from .methods import GRADCAM_PASS_METHODS, MethodOptions, get_method
from .methods import parse_methods as parse_methods
from .models import LoadedModel, load_model
from .results import AblationSweep, GradCamResult, MethodMaps, Prediction
from .session import Session

if TYPE_CHECKING:
    from .budget import MemoryBudget

#: the seed's methods: their files are written as before (gradcam_<c>, ablation_<c>, ...)
SEED_METHODS = ("gradcam", "activation", "ablation")
#: what ``explain`` computes unless asked otherwise (the name callers used before the
#: registry; the vocabulary is engine.methods.METHODS)
METHODS = DEFAULT_METHODS


@dataclass(frozen=True)
class ExplainRequest:
    image: str
    model: str = "fcn_resnet101"  # a built-in name or the path of a model card (.toml)
    weights: str | None = None  # None: 'default' for a built-in, the card's for a card
    device: str = "auto"
    size: int | None = None  # None: the model's (640, the seed's, unless a card says)
    targets: str = "all"  # 'all', or comma-separated names / indices
    methods: tuple[str, ...] = DEFAULT_METHODS  # any of engine.methods.METHODS
    layer: str | None = None
    segments: str = "class"
    baseline: str = "zero"
    upsample: str = "nearest"
    aggregation: str = "argmax"
    allow_download: bool = True
    precision: str = "fp32"  # 'bf16': fast mode (autocast; not Captum-exact)
    # the other methods' options (engine.methods.MethodOptions)
    n_steps: int = 50
    ig_method: str = "gausslegendre"
    window: int = 0
    stride: int = 0
    n_samples: int = 25
    shapley_mode: str = "auto"
    seed: int = 0
    # the memory budget in GiB (engine.budget): None for SEGEXPLORER_GPU_MEMORY or the
    # device's default
    gpu_memory: float | None = None

    def memory_budget(self, model: LoadedModel) -> MemoryBudget:
        """The budget of this request's sessions on ``model``'s device."""
        return resolve_budget(model.device, self.gpu_memory)

    def method_options(self) -> MethodOptions:
        """The options every method reads, from this request."""
        return MethodOptions(
            layer=self.layer, aggregation=self.aggregation, upsample=self.upsample,
            segments=self.segments, baseline=self.baseline, n_steps=self.n_steps,
            ig_method=self.ig_method, window=self.window, stride=self.stride,
            n_samples=self.n_samples, shapley_mode=self.shapley_mode, seed=self.seed,
        ).check()


@dataclass(frozen=True)
class ExplainResult:
    """Everything ``segexplorer explain`` writes, ready for the export layer."""

    image_path: str
    model: str
    weights: str
    untrained: bool
    device: str
    size: int
    prediction: Prediction
    targets: tuple[int, ...]
    gradcam: GradCamResult | None
    sweep: AblationSweep | None
    methods: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)
    forward_passes: int = 0  # images through the model (a batch of k counts k)
    precision: str = "fp32"
    model_info: dict[str, Any] = field(default_factory=dict)  # LoadedModel.describe()
    maps: dict[str, MethodMaps] = field(default_factory=dict)  # every method asked for
    forward_calls: int = 0  # the model calls that carried those images
    backward_passes: int = 0  # images through a backward pass (one per image and class)
    memory_budget: MemoryBudget | None = None  # the session's (engine.budget)

    def method_maps(self, method: str) -> MethodMaps:
        """``method``'s maps for the targets (every method in ``methods`` has them)."""
        return self.maps[method]


def resolve_targets(prediction: Prediction, text: str) -> tuple[int, ...]:
    """'all' (every predicted class, largest first) or names / indices, comma-separated."""
    if text.strip().lower() == "all":
        return tuple(prediction.present_classes)
    items = [t for t in (s.strip() for s in text.split(",")) if t]
    if not items:
        raise UserError("No target given: use a class name, an index or 'all'.")
    return tuple(dict.fromkeys(prediction.class_index(t) for t in items))


def gradcam_targets(request: ExplainRequest, categories: tuple[str, ...]
                    ) -> list[int] | None:
    """The classes ``explain``'s Grad-CAM pass takes gradients for, known before any
    pass: the request's named targets, or None for every predicted class."""
    if request.targets.strip().lower() == "all":
        return None
    return list(resolve_targets(_categories_only(categories), request.targets))


def _categories_only(categories: tuple[str, ...]) -> Prediction:
    """A stand-in prediction that can resolve class names before any forward pass."""
    import numpy as np

    return Prediction(image=np.zeros((1, 1, 3), np.uint8), logits=np.zeros((1, 1, 1)),
                      class_map=np.zeros((1, 1), np.int64), categories=categories)


def explain(request: ExplainRequest, state: JobState | None = None,
            model: LoadedModel | None = None, image: Image.Image | None = None
            ) -> ExplainResult:
    """Load, predict, Grad-CAM every target from one pass, one ablation sweep.

    ``model`` and ``image`` (the opened ``request.image``) skip loading them again.
    """
    timings: dict[str, float] = {}
    parse_methods(request.methods)  # fail early, before any work
    check_setting(request.gpu_memory)
    request.method_options()
    parse_baseline(request.baseline)
    if image is None:
        t0 = time.perf_counter()
        image = load_image(request.image)
        timings["load_image"] = time.perf_counter() - t0
    if model is None:
        t0 = time.perf_counter()
        model = load_model(request.model, request.weights, request.device,
                           allow_download=request.allow_download, state=state)
        timings["load_model"] = time.perf_counter() - t0
    check_request(request, model)
    t0 = time.perf_counter()
    prepared = prepare_image(image, request, model)
    timings["preprocess"] = time.perf_counter() - t0
    session = Session(model, prepared, precision=request.precision,
                      budget=request.memory_budget(model))
    return explain_session(session, request, state=state, timings=timings)


def check_request(request: ExplainRequest, model: LoadedModel) -> None:
    """Refuse, before any work, options this model cannot serve (a layer Grad-CAM cannot
    use). ``explain`` calls it once per image; a batch once per run."""
    methods = parse_methods(request.methods)
    request.method_options()  # a bad option fails before any work
    if request.layer is not None and any(get_method(m).takes_layer for m in methods):
        model.check_layer(request.layer)


def prepare_image(image: Image.Image, request: ExplainRequest,
                  model: LoadedModel) -> PreparedImage:
    """The opened image as ``explain`` feeds it to ``model``: the seed's Resize to the
    request's working size (else the model's), ToTensor and the model's Normalize.
    Thread-safe (no model call): a batch prepares the next images while one is explained."""
    return preprocess(image, request.size or model.default_size, model.normalization)


def explain_session(session: Session, request: ExplainRequest, *,
                    state: JobState | None = None, gradcam: GradCamResult | None = None,
                    sweep: AblationSweep | None = None,
                    timings: dict[str, float] | None = None,
                    computed: dict[str, MethodMaps] | None = None) -> ExplainResult:
    """The analysis of the image a session holds, as ``segexplorer explain`` writes it.

    ``request`` gives the options (its image, model and weights fields are only
    reported); ``gradcam``, ``sweep`` and ``computed`` (a method's maps), results computed
    before for this session (the window's), are used when they fit the options and the
    targets, so nothing is computed twice. Every method goes through the registry
    (``engine.attribution.compute``): one set of model evaluations for all targets.
    """
    from .attribution import compute

    timings = dict(timings or {})
    methods = parse_methods(request.methods)
    options = request.method_options()
    model = session.model
    agg = Aggregation(request.aggregation)
    baseline = parse_baseline(request.baseline)  # fail early on a bad baseline
    if gradcam is not None and not (
            gradcam.layer == normalize_layer_path(request.layer or model.default_layer)
            and gradcam.aggregation == agg.kind and gradcam.upsample == request.upsample):
        gradcam = None
    if sweep is not None and not (sweep.segments.kind == request.segments
                                  and sweep.baseline == baseline.label
                                  and sweep.aggregation == agg.kind):
        sweep = None
    layer_pass = gradcam  # a Grad-CAM pass for these options, if one was given
    if any(m in GRADCAM_PASS_METHODS for m in methods):
        if gradcam is None:
            # One forward pass gives the prediction and every target's Grad-CAM.
            t0 = time.perf_counter()
            gradcam = session.gradcam(gradcam_targets(request, model.categories), layer=request.layer, aggregation=agg,
                                      upsample=request.upsample, state=state)
            timings["predict_and_gradcam"] = time.perf_counter() - t0
            layer_pass = gradcam
    else:
        gradcam = None
        t0 = time.perf_counter()
        session.predict(state)
        timings["predict"] = time.perf_counter() - t0
    prediction = session.predict()
    targets = resolve_targets(prediction, request.targets)
    check_cancelled(state)
    if "ablation" in methods:
        if sweep is None:
            t0 = time.perf_counter()
            segments = prediction.segments(request.segments)
            sweep = session.sweep(segments, baseline=request.baseline, aggregation=agg,
                                  state=state)
            timings["ablation"] = time.perf_counter() - t0
    else:
        sweep = None
    maps: dict[str, MethodMaps] = {}
    for method in methods:
        check_cancelled(state)
        reuse = (computed or {}).get(method)
        if reuse is not None and reuse.settings == _settings_for(reuse, options, method) \
                and all(c in reuse.maps for c in targets):
            maps[method] = reuse
            continue
        maps[method] = compute(session, method, list(targets), options, state=state,
                               segments=sweep.segments if sweep is not None else None,
                               gradcam=layer_pass, sweep=sweep)
    return ExplainResult(
        image_path=str(Path(request.image)),
        model=model.name,
        weights=model.weights,
        untrained=model.untrained,
        device=describe_device(model.device),
        size=request.size or session.image.size,
        prediction=prediction,
        targets=targets,
        gradcam=gradcam,
        sweep=sweep,
        methods=methods,
        timings=timings,
        forward_passes=session.forward_images,
        precision=session.precision,
        model_info=model.describe(),
        maps=maps,
        forward_calls=session.forward_calls,
        backward_passes=session.backward_images,
        memory_budget=session.budget,
    )


def _settings_for(maps: MethodMaps, options: MethodOptions, method: str
                  ) -> tuple[tuple[str, object], ...]:
    """``options``' settings for ``method`` as ``maps`` records them (the layer resolved)."""
    def resolved(key: str, value: object) -> object:
        if key != "layer":
            return value
        return maps.layer if value is None else normalize_layer_path(str(value))

    return tuple((k, resolved(k, v)) for k, v in options.used_by(method))
