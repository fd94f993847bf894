"""The attribution methods: one registry, torch-free, that every caller takes its words from.

Each method says what it is called, what it reads (a layer? segments and a baseline?
integration steps, an occlusion window, permutation samples?), whether its maps are
signed, which Captum (or pytorch-grad-cam) call it equals, and what it costs for an
image before it runs, for all the requested classes together, in one unit on every
device: images through the model ("forward passes": a batch of four images counts four)
and images through a backward pass ("backward passes": one per image and class), and,
when the session's memory facts are given, the memory it will take under the budget.
What a run reports (``MethodMaps.forward`` / ``backward``) is counted in the same unit,
so an estimate and its run say the same numbers in the same words. The computations live in ``engine.attribution``
(torch); this module stays importable before torch has loaded, so the window's method
list, the CLI's ``--methods``, Export all, the batch command and the evaluation all
read the same table.

The rule every method follows, as the ablation sweep does: each image goes through the
model once and gives the score of every class, so asking for all classes costs the
forward passes of one (only gradients are taken per class).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace

from .budget import MemoryFacts, MemoryUse
from .errors import UserError

GRADCAM, ACTIVATION, ABLATION = "gradcam", "activation", "ablation"
SHAPLEY, OCCLUSION, IG, LAYER_IG = "shapley", "occlusion", "ig", "layer_ig"
HIRESCAM, GUIDED_GRADCAM = "hirescam", "guided_gradcam"

#: what a method works from: a layer's output (its activation, or gradients there),
#: perturbed inputs (forward passes only: no hooks, no gradients), or the input's gradients
LAYER, PERTURBATION, GRADIENT = "layer", "perturbation", "gradient"
FAMILIES = (LAYER, PERTURBATION, GRADIENT)

#: Captum's integral approximations (IntegratedGradients' ``method``)
IG_RULES = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right",
            "riemann_middle")
#: Shapley values: exact (every coalition once) up to this many segments, sampled above.
#: Measured (docs/performance.md): 2^8 = 256 coalitions cost about what 25 sampled
#: permutations of 8 segments do (at most 8 x 25 = 200 images, fewer once repeated
#: coalitions are reused), and 9 segments would double it for no change in kind.
SHAPLEY_EXACT_LIMIT = 8
SHAPLEY_MODES = ("auto", "exact", "sampling")
#: Above this many segments even an explicit ``exact`` is refused (2^16 images).
SHAPLEY_EXACT_MAX = 16


@dataclass(frozen=True)
class MethodOptions:
    """Every option any method reads; each method declares the ones it uses."""

    layer: str | None = None  # None: the model's default layer
    aggregation: str = "argmax"  # the class score (engine.aggregation)
    upsample: str = "nearest"  # layer maps to the input's size
    segments: str = "class"  # what a Shapley player / ablated feature is
    baseline: str = "zero"  # what replaces a removed pixel, and IG's starting point
    n_steps: int = 50  # integrated gradients: steps of the integral
    ig_method: str = "gausslegendre"  # integrated gradients: Captum's approximation
    window: int = 0  # occlusion: window side in pixels (0: from the image)
    stride: int = 0  # occlusion: step in pixels (0: half the window)
    n_samples: int = 25  # Shapley sampling: permutations
    shapley_mode: str = "auto"  # auto (exact up to SHAPLEY_EXACT_LIMIT segments), exact, sampling
    seed: int = 0  # Shapley sampling: the permutations' seed

    def check(self) -> MethodOptions:
        """This, or a one-line UserError naming the bad option."""
        if self.n_steps < 1 or self.n_steps > 1000:
            raise UserError(f"--n-steps {self.n_steps}: use 1 to 1000 integration steps.")
        if self.ig_method not in IG_RULES:
            raise UserError(f"Unknown integration method '{self.ig_method}': use one of "
                            f"{', '.join(IG_RULES)}.")
        if self.window < 0 or self.stride < 0:
            raise UserError("The occlusion window and stride must be positive (0: sized "
                            "from the image).")
        if self.stride and self.window and self.stride > self.window:
            raise UserError(f"Occlusion stride {self.stride} is larger than the window "
                            f"{self.window}: some pixels would never be occluded.")
        if self.n_samples < 1 or self.n_samples > 100_000:
            raise UserError(f"--n-samples {self.n_samples}: use 1 to 100000 permutations.")
        if self.shapley_mode not in SHAPLEY_MODES:
            raise UserError(f"Unknown Shapley mode '{self.shapley_mode}': use "
                            f"{', '.join(SHAPLEY_MODES)}.")
        return self

    def used_by(self, method: str) -> tuple[tuple[str, object], ...]:
        """The options ``method`` reads, as sorted (name, value) pairs: what identifies
        its result (a cache key) and what its report lists."""
        uses = get_method(method).uses
        return tuple((f.name, getattr(self, f.name)) for f in fields(self) if f.name in uses)

    def with_(self, **changes: object) -> MethodOptions:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ImageFacts:
    """What a cost depends on, known before any model call."""

    height: int
    width: int
    segments: int  # S, the number of segments (players, ablated features)
    targets: int  # T, the classes asked for
    memory: MemoryFacts | None = None  # the budget, one image's memory (SessionMemory.memory_facts)


def describe_images(forward: int, backward: int = 0, detail: str = "") -> str:
    """'300 images through the model (50 forward, 250 backward; 50 steps ...)': the words
    of an estimate, of a run's progress and of its result, in one unit (an image through
    the model forward, or back through it for one class; however they were batched)."""
    total = forward + backward
    text = f"{total} image{'s' if total != 1 else ''} through the model"
    parts = [f"{forward} forward, {backward} backward"] if backward else []
    if detail:
        parts.append(detail)
    return f"{text} ({'; '.join(parts)})" if parts else text


def describe_progress(label: str, done: int, total: int, detail: str = "") -> str:
    """'Integrated gradients: 96 of 300 images through the model (steps 1-48 of 50)': a
    run's progress in the unit of its estimate (``total``: its forward and backward
    images together)."""
    text = f"{label}: {done} of {total} images through the model"
    return f"{text} ({detail})" if detail else text


@dataclass(frozen=True)
class Cost:
    """What a method takes for one image and all its targets."""

    forward: int  # images through the model (a batch of k counts k)
    backward: int  # images through a backward pass (one per image and class)
    detail: str = ""  # e.g. 'exact: all 2^5 coalitions, every class'
    memory: MemoryUse | None = None  # its largest chunk, when the memory facts were given

    def seconds(self, forward_seconds: float) -> float:
        """A rough time from one image's forward time (a backward costs about two)."""
        return forward_seconds * (self.forward + 2 * self.backward)

    def describe(self) -> str:
        """'300 images through the model (50 forward, 250 backward; 50 steps ...)'."""
        return describe_images(self.forward, self.backward, self.detail)

    def describe_memory(self) -> str:
        """'memory: about 1.2 GiB (4 images at a time within the 8.0 GiB budget)', or ''
        when the memory facts were not given."""
        return f"memory: {self.memory.describe()}" if self.memory is not None else ""


@dataclass(frozen=True)
class MethodInfo:
    name: str
    label: str
    uses: frozenset[str]  # the MethodOptions fields it reads
    signed: bool  # its maps take both signs (False: never negative)
    per_class: bool  # a map per class (False: one map for every class, the activation)
    layer_map: bool  # it has a raw map at the layer's resolution (<method>_raw_c)
    perturbation: bool  # it only runs forward passes (no hooks, no gradients)
    equals: str  # the library call its numbers equal
    summary: str  # one sentence for tooltips and docs
    cost: Callable[[ImageFacts, MethodOptions], Cost] = field(repr=False, compare=False)

    @property
    def family(self) -> str:
        """LAYER, PERTURBATION or GRADIENT (:data:`METHOD_FAMILIES`)."""
        return METHOD_FAMILIES[self.name]

    @property
    def short_label(self) -> str:
        """The label where room is short (table headers): 'Grad-CAM' for 'Layer Grad-CAM'."""
        return SHORT_LABELS.get(self.name, self.label)

    @property
    def takes_layer(self) -> bool:
        return "layer" in self.uses

    @property
    def takes_segments(self) -> bool:
        return "segments" in self.uses

    @property
    def takes_baseline(self) -> bool:
        return "baseline" in self.uses


# -- costs ------------------------------------------------------------------------------
def occlusion_geometry(height: int, width: int, options: MethodOptions
                       ) -> tuple[int, int, int, int]:
    """(window height, window width, stride y, stride x): the user's, or sized from the
    image: a window of an eighth of the shorter side (at least 2 px), moved by half of it."""
    side = options.window or max(2, round(min(height, width) / 8))
    wh, ww = min(side, height), min(side, width)
    stride = options.stride or max(1, side // 2)
    return wh, ww, min(stride, wh), min(stride, ww)


def occlusion_shifts(height: int, width: int, options: MethodOptions) -> tuple[int, int]:
    """How many window positions down and across, as Captum's Occlusion counts them."""
    wh, ww, sy, sx = occlusion_geometry(height, width, options)
    return math.ceil((height - wh) / sy) + 1, math.ceil((width - ww) / sx) + 1


def shapley_is_exact(segments: int, options: MethodOptions) -> bool:
    if options.shapley_mode == "exact":
        if segments > SHAPLEY_EXACT_MAX:
            raise UserError(f"Exact Shapley values for {segments} segments need 2^{segments} "
                            f"forward passes: use --shapley-mode sampling (or auto), or "
                            f"fewer segments (at most {SHAPLEY_EXACT_MAX} for exact).")
        return True
    if options.shapley_mode == "sampling":
        return False
    return segments <= SHAPLEY_EXACT_LIMIT


def _gradcam_cost(f: ImageFacts, o: MethodOptions) -> Cost:
    return Cost(1, f.targets, "one pass for every class, a gradient per class")


def _activation_cost(f: ImageFacts, o: MethodOptions) -> Cost:
    return Cost(1, 0, "the layer's output, the same map for every class")


def _ablation_cost(f: ImageFacts, o: MethodOptions) -> Cost:
    return Cost(f.segments, 0, f"each of {f.segments} segments once, every class")


def _shapley_cost(f: ImageFacts, o: MethodOptions) -> Cost:
    s = f.segments
    if s == 0:
        return Cost(0, 0, "no segments")
    if shapley_is_exact(s, o):
        # every coalition once; the full one is the image itself (the prediction's pass)
        return Cost(2 ** s - 1, 0, f"exact: all 2^{s} coalitions, every class")
    # each permutation adds segments one by one; the empty coalition is shared, the full
    # one is the prediction, repeated coalitions are evaluated once
    bound = min(2 ** s - 1, o.n_samples * (s - 1) + 1)
    return Cost(bound, 0, f"sampled: {o.n_samples} permutations of {s} segments, "
                          "at most this many coalitions")


def _occlusion_cost(f: ImageFacts, o: MethodOptions) -> Cost:
    ny, nx = occlusion_shifts(f.height, f.width, o)
    wh, ww, sy, sx = occlusion_geometry(f.height, f.width, o)
    return Cost(ny * nx, 0, f"{ny} x {nx} windows of {wh} x {ww} px, stride {sy} x {sx}")


def _ig_cost(f: ImageFacts, o: MethodOptions) -> Cost:
    return Cost(o.n_steps, f.targets * o.n_steps,
                f"{o.n_steps} steps ({o.ig_method}) through the model once, a gradient per "
                "class")


def _layer_ig_cost(f: ImageFacts, o: MethodOptions) -> Cost:
    return Cost(o.n_steps + 2, f.targets * o.n_steps,
                f"the layer's output on the image and the baseline, then {o.n_steps} steps "
                f"({o.ig_method}) through the model once, a gradient per class")


def _hirescam_cost(f: ImageFacts, o: MethodOptions) -> Cost:
    return Cost(1, f.targets, "one pass for every class, a gradient per class")


def _guided_cost(f: ImageFacts, o: MethodOptions) -> Cost:
    return Cost(2, 2 * f.targets, "Grad-CAM's pass and a guided-backpropagation pass, a "
                                  "gradient per class in each")


_LAYER = frozenset({"layer", "aggregation", "upsample"})
_PERTURB = frozenset({"baseline", "aggregation"})

_REGISTRY: tuple[MethodInfo, ...] = (
    MethodInfo(GRADCAM, "Layer Grad-CAM", _LAYER, True, True, True, False,
               "captum.attr.LayerGradCam",
               "The layer's activation weighted by the class score's gradient averaged "
               "over space, summed over channels.", _gradcam_cost),
    MethodInfo(ACTIVATION, "Layer activation", frozenset({"layer"}), True, False, True, False,
               "captum.attr.LayerActivation",
               "The layer's output averaged over channels: what the layer sees, the same "
               "for every class.", _activation_cost),
    MethodInfo(ABLATION, "Feature ablation", frozenset({"segments"}) | _PERTURB, True, True,
               False, True, "captum.attr.FeatureAblation",
               "The drop in the class score when each segment alone is replaced by the "
               "baseline.", _ablation_cost),
    MethodInfo(SHAPLEY, "Shapley values (segments)",
               frozenset({"segments", "n_samples", "shapley_mode", "seed"}) | _PERTURB,
               True, True, False, True,
               "captum.attr.ShapleyValues (exact) / ShapleyValueSampling",
               "Each segment's average contribution over every order of putting the "
               "segments back: what segments do together, not one at a time.",
               _shapley_cost),
    MethodInfo(OCCLUSION, "Occlusion", frozenset({"window", "stride"}) | _PERTURB, True, True,
               False, True, "captum.attr.Occlusion",
               "The drop in the class score when a sliding window is replaced by the "
               "baseline, averaged over the windows covering each pixel.", _occlusion_cost),
    MethodInfo(IG, "Integrated gradients", frozenset({"n_steps", "ig_method"}) | _PERTURB,
               True, True, False, False, "captum.attr.IntegratedGradients",
               "Gradients along the straight path from the baseline to the image, times "
               "the difference (summed over colour channels).", _ig_cost),
    MethodInfo(LAYER_IG, "Layer integrated gradients",
               frozenset({"n_steps", "ig_method"}) | _PERTURB | _LAYER, True, True, True,
               False, "captum.attr.LayerIntegratedGradients",
               "Integrated gradients of the layer's output between the baseline's and the "
               "image's (summed over channels).", _layer_ig_cost),
    MethodInfo(HIRESCAM, "HiResCAM (Seg-XRes-CAM)", _LAYER, True, True, True, False,
               "pytorch_grad_cam.HiResCAM (before its ReLU and scaling)",
               "Gradient times activation element by element, summed over channels: no "
               "averaging of the gradient over space.", _hirescam_cost),
    MethodInfo(GUIDED_GRADCAM, "Guided Grad-CAM", _LAYER, True, True, False, False,
               "captum.attr.GuidedGradCam",
               "Guided backpropagation times the upsampled Grad-CAM (ReLU'd). Known to "
               "survive model randomisation (Adebayo et al., 2018).", _guided_cost),
)

#: each method's family (MethodInfo.family): callers look it up, never branch on a name
METHOD_FAMILIES: dict[str, str] = {
    GRADCAM: LAYER, ACTIVATION: LAYER, LAYER_IG: LAYER, HIRESCAM: LAYER,
    ABLATION: PERTURBATION, SHAPLEY: PERTURBATION, OCCLUSION: PERTURBATION,
    IG: GRADIENT, GUIDED_GRADCAM: GRADIENT,
}
#: labels where room is short (the dataset table's headers); the others use their label
SHORT_LABELS: dict[str, str] = {GRADCAM: "Grad-CAM", ACTIVATION: "Activation",
                                ABLATION: "Ablation"}

METHOD_REGISTRY: dict[str, MethodInfo] = {m.name: m for m in _REGISTRY}
if set(METHOD_FAMILIES) != set(METHOD_REGISTRY) or not set(METHOD_FAMILIES.values()) <= set(
        FAMILIES):
    raise AssertionError("every registered method needs one family of FAMILIES")
METHODS: tuple[str, ...] = tuple(METHOD_REGISTRY)
#: what ``segexplorer explain`` computes unless --methods says otherwise (the seed's)
DEFAULT_METHODS: tuple[str, ...] = (GRADCAM, ACTIVATION, ABLATION)
#: the methods whose maps come from one Grad-CAM pass (and so from the prediction's)
GRADCAM_PASS_METHODS: tuple[str, ...] = (GRADCAM, ACTIVATION)


def get_method(name: str) -> MethodInfo:
    info = METHOD_REGISTRY.get(name)
    if info is None:
        raise UserError(f"Unknown method '{name}': use one of {', '.join(METHODS)}.")
    return info


def parse_methods(text: str | Iterable[str]) -> tuple[str, ...]:
    """A comma-separated list (or 'all') of method names, checked, in the order given."""
    items = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text)]
    items = [m for m in items if m]
    if items == ["all"]:
        return METHODS
    bad = [m for m in items if m not in METHOD_REGISTRY]
    if bad or not items:
        raise UserError(f"Unknown method '{bad[0] if bad else ''}': use a comma-separated "
                        f"list of {', '.join(METHODS)} (or all).")
    return tuple(dict.fromkeys(items))


def method_cost(method: str, facts: ImageFacts, options: MethodOptions | None = None) -> Cost:
    """What ``method`` takes for an image and ``facts.targets`` classes; with
    ``facts.memory``, also the memory of its largest chunk under the budget."""
    options = options or MethodOptions()
    cost = get_method(method).cost(facts, options)
    if facts.memory is None:
        return cost
    return replace(cost, memory=method_memory(method, cost, facts.memory, options))


def method_memory(method: str, cost: Cost, memory: MemoryFacts,
                  options: MethodOptions) -> MemoryUse | None:
    """The memory of ``method``'s largest chunk: integration steps with their graphs
    (integrated gradients), perturbed images without (the perturbation methods), or one
    image (the one-pass methods; Guided Grad-CAM's graph reaches the input)."""
    if method in (IG, LAYER_IG):
        return memory.use(options.n_steps, gradient=True)
    if get_method(method).perturbation:
        return memory.use(cost.forward, gradient=False)
    return memory.use(1, gradient=method == GUIDED_GRADCAM)
