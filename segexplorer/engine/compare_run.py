"""Two models side by side: loading both on one device, what memory that takes, and the
model calls of a comparison (two Sessions on one image), handed to ``engine.compare``.

* :func:`load_pair` builds both models on the CPU, matches their classes by name,
  prepares the image for each (its own working size, mean and std), and checks that the
  device holds both (:class:`PairMemory`) before moving them there: a pair that does
  not fit is refused in one line, before any work.
* :func:`compare_sessions` runs ``explain``'s own analysis on each session (the same
  call ``segexplorer explain`` makes, so each side's maps are explain's), the segment
  methods again on the segments both share, and returns the pure
  :func:`engine.compare.compare` of the two. A caller that computed some of one side's
  results before (the window: the maps it shows for model A) hands them over
  (:class:`Computed`): only the classes they lack are computed.
* :func:`ablate_both` ablates the same common segments (or a drawn region) in both
  models: the window's ablate mode while it compares.

Memory (:class:`PairMemory`): each model's parameters and buffers stay on the device
while the comparison runs; the two models' passes run one after the other, so the
larger one counts. A pass is estimated, not run: every layer's output is measured on a
64 px probe and scaled to the working size, their sum being what a pass with gradients
through the whole model keeps (integrated gradients, guided backpropagation; inference
alone keeps less). The pair must fit the memory budget (``engine.budget``: ``--gpu-memory``,
``SEGEXPLORER_GPU_MEMORY``, else the device's default), the figure every batched path of
the engine chunks under: both models and the larger pass of one image within it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from .aggregation import Aggregation
from .analysis import (
    ExplainRequest,
    ExplainResult,
    check_request,
    explain_session,
    prepare_image,
)
from .budget import MemoryBudget, resolve_budget
from .compare import (
    NEAREST,
    ClassMatching,
    CommonSegments,
    CompareSide,
    Comparison,
    check_resample,
    common_segments,
    compare,
    match_classes,
    resolve_targets,
)
from .devices import resolve_device
from .errors import UserError
from .image import PreparedImage
from .jobs import JobState
from .methods import ABLATION, GRADCAM_PASS_METHODS, get_method, parse_methods
from .models import LoadedModel, load_model
from .results import AblationSweep, GradCamResult, MethodMaps
from .segments import Segments
from .session import AblationOutcome, Session

PROBE_SIDE = 64  # the pass estimate's probe: this many pixels on the shorter side


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop returns


# -- memory ------------------------------------------------------------------------------------
def model_bytes(model: LoadedModel) -> int:
    """The model's parameters and buffers (each tensor once)."""
    tensors: Iterable[torch.Tensor] = (*model.module.parameters(), *model.module.buffers())
    return int(sum(t.numel() * t.element_size() for t in tensors))


def pass_bytes(model: LoadedModel, shape: tuple[int, int]) -> int | None:
    """An estimate of one pass with gradients at working size ``shape`` (rows, columns):
    the input, every layer's output and the logits, measured on a probe of
    :data:`PROBE_SIDE` px on the shorter side and scaled by the pixel count. None when
    the probe fails (a model that refuses small inputs)."""
    h, w = shape
    scale = min(1.0, PROBE_SIDE / max(1, min(h, w)))
    ph, pw = max(1, round(h * scale)), max(1, round(w * scale))
    seen: set[int] = set()
    kept: list[torch.Tensor] = []  # alive until the end: a freed output's address is reused
    total = 0

    def count(_module: torch.nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        stack = [output]
        while stack:
            item = stack.pop()
            if isinstance(item, torch.Tensor):
                if item.data_ptr() not in seen:  # an in-place layer's output counts once
                    seen.add(item.data_ptr())
                    kept.append(item)
                    total += item.numel() * item.element_size()
            elif isinstance(item, (tuple, list)):
                stack.extend(item)
            elif isinstance(item, dict):
                stack.extend(item.values())

    leaves = [m for m in model.module.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    probe = torch.zeros(1, 3, ph, pw, device=model.device)
    try:
        with torch.inference_mode():
            logits = model.logits(probe)
        total += probe.numel() * probe.element_size() + logits.numel() * logits.element_size()
    except Exception:  # noqa: BLE001 - an estimate: a model may refuse the probe's size
        return None
    finally:
        for handle in handles:
            handle.remove()
        kept.clear()
    return int(total * (h * w) / (ph * pw))


@dataclass(frozen=True)
class PairMemory:
    """What two models on one device take, and what the device can give."""

    device: str
    labels: tuple[str, str]  # e.g. ('A (fcn_resnet50)', 'B (roads.toml)')
    a_bytes: int  # parameters and buffers
    b_bytes: int
    a_pass: int | None  # an estimated pass with gradients at A's working size
    b_pass: int | None
    shapes: tuple[tuple[int, int], tuple[int, int]]  # working sizes (rows, columns)
    budget: MemoryBudget  # what the pair may take on the device (engine.budget)

    @property
    def largest_pass(self) -> int:
        return max(self.a_pass or 0, self.b_pass or 0)

    @property
    def needed(self) -> int:
        return self.a_bytes + self.b_bytes + self.largest_pass

    @property
    def fits(self) -> bool:
        return self.needed <= self.budget.limit

    def describe(self) -> str:
        """One line: both models, the larger pass, the total, the device's room."""
        def shape(s: tuple[int, int]) -> str:
            return f"{s[1]} x {s[0]} px"

        passes = []
        for label, value, s in ((self.labels[0], self.a_pass, self.shapes[0]),
                                (self.labels[1], self.b_pass, self.shapes[1])):
            passes.append(f"{label.split(' ')[0]} {human_bytes(value) if value else '?'} "
                          f"at {shape(s)}")
        room = f"memory budget {human_bytes(self.budget.limit)} ({self.budget.source})"
        return (f"{self.labels[0]} {human_bytes(self.a_bytes)} and {self.labels[1]} "
                f"{human_bytes(self.b_bytes)} of parameters and buffers, a pass with "
                f"gradients up to {human_bytes(self.largest_pass)} ({', '.join(passes)}): "
                f"{human_bytes(self.needed)} on {self.device}, {room}")

    def check(self) -> PairMemory:
        """This, or a one-line UserError when the device cannot hold both."""
        if not self.fits:
            raise UserError(f"The two models do not fit on {self.device}: "
                            f"{self.describe()}. Use a smaller --size / --with-size, a "
                            "larger --gpu-memory, another --device, or smaller models.")
        return self

    def to_json(self) -> dict[str, object]:
        return {"device": self.device, "parameters_and_buffers_bytes":
                {"a": self.a_bytes, "b": self.b_bytes},
                "pass_estimate_bytes": {"a": self.a_pass, "b": self.b_pass},
                "needed_bytes": self.needed, "budget": self.budget.as_json(),
                "summary": self.describe()}


def pair_memory(a: LoadedModel, b: LoadedModel, shape_a: tuple[int, int],
                shape_b: tuple[int, int], device: torch.device,
                labels: tuple[str, str] = ("A", "B"),
                budget: MemoryBudget | None = None) -> PairMemory:
    """What ``a`` and ``b`` take on ``device`` at these working sizes, against the memory
    budget (``budget``, else ``resolve_budget(device)``: SEGEXPLORER_GPU_MEMORY or the
    device's default)."""
    return PairMemory(str(device), labels, model_bytes(a), model_bytes(b),
                      pass_bytes(a, shape_a), pass_bytes(b, shape_b),
                      (shape_a, shape_b),
                      budget if budget is not None else resolve_budget(device))


def to_device(model: LoadedModel, device: torch.device) -> LoadedModel:
    """``model`` on ``device`` (its module moved in place)."""
    if model.device == device:
        return model
    try:
        model.module.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise UserError(f"Could not move {model.name} to {device}: {exc}. "
                        "Try --device cpu.") from None
    return replace(model, device=device)


# -- loading a pair ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelPair:
    """Two models on one device, ready to compare on one image."""

    a: LoadedModel
    b: LoadedModel
    request_a: ExplainRequest  # B's layer resolved (see :func:`load_pair`)
    request_b: ExplainRequest
    prepared_a: PreparedImage  # the image as each model takes it
    prepared_b: PreparedImage
    matching: ClassMatching
    memory: PairMemory
    notes: tuple[str, ...] = ()  # what the user should know (B's layer fell back, ...)

    def sessions(self) -> tuple[Session, Session]:
        """Each model's session on the image, chunking under the pair's budget."""
        budget = self.memory.budget
        return (Session(self.a, self.prepared_a, precision=self.request_a.precision,
                        budget=budget),
                Session(self.b, self.prepared_b, precision=self.request_b.precision,
                        budget=budget))


def side_label(side: str, model: LoadedModel) -> str:
    return f"{side.upper()} ({model.card.path.name if model.card else model.name})"


def _load_side(request: ExplainRequest, side: str, flag: str,
               state: JobState | None) -> LoadedModel:
    try:
        return load_model(request.model, request.weights, "cpu",
                          allow_download=request.allow_download, state=state)
    except UserError as exc:
        raise UserError(f"{side.upper()} ({flag} {request.model}): {exc}") from None


@dataclass(frozen=True)
class PairModels:
    """Both models loaded, their classes matched and both requests checked: what a pair
    is before an image (``segexplorer batch --with`` keeps it for every image)."""

    a: LoadedModel
    b: LoadedModel
    request_a: ExplainRequest  # B's layer resolved (see :func:`load_models`)
    request_b: ExplainRequest
    matching: ClassMatching
    device: torch.device  # where the pair runs (the models may still be on the CPU)
    budget: MemoryBudget
    notes: tuple[str, ...] = ()

    @property
    def labels(self) -> tuple[str, str]:
        return side_label("a", self.a), side_label("b", self.b)

    def prepare(self, image: Image.Image) -> tuple[PreparedImage, PreparedImage]:
        """The image as each model takes it (its own working size, mean and std)."""
        return (prepare_image(image, self.request_a, self.a),
                prepare_image(image, self.request_b, self.b))

    def memory(self, shape_a: tuple[int, int], shape_b: tuple[int, int]) -> PairMemory:
        """What the pair takes at these working sizes, against the budget."""
        return pair_memory(self.a, self.b, shape_a, shape_b, self.device, self.labels,
                           self.budget)

    def placed(self) -> PairModels:
        """Both models on the pair's device (moved in place)."""
        return replace(self, a=to_device(self.a, self.device),
                       b=to_device(self.b, self.device))

    def on_image(self, image: Image.Image) -> ModelPair:
        """The pair on one image: prepared for each model, the memory checked (a pair the
        budget cannot hold is refused in one line), the models on the device."""
        prepared_a, prepared_b = self.prepare(image)
        memory = self.memory(prepared_a.shape, prepared_b.shape).check()
        placed = self.placed()
        return ModelPair(placed.a, placed.b, self.request_a, self.request_b, prepared_a,
                         prepared_b, self.matching, memory, self.notes)


def load_models(request_a: ExplainRequest, request_b: ExplainRequest, *,
                layer_b_given: bool = True, state: JobState | None = None) -> PairModels:
    """Load both models on the CPU, match their classes and check both requests.

    ``request_b.layer`` is B's layer; when ``layer_b_given`` is False it is A's
    (``--layer``) and B takes it only if it has a usable layer of that path (two
    checkpoints of one architecture), else its own default layer, with a note.
    Refusals (a model that fails to load, no class in common) are one-line UserErrors.
    """
    device = resolve_device(request_a.device)
    parse_methods(request_a.methods)
    request_a.method_options()
    budget = resolve_budget(device, request_a.gpu_memory)
    a = _load_side(request_a, "a", "--model", state)
    b = _load_side(request_b, "b", "--with", state)
    matching = match_classes(a.categories, b.categories,
                             (side_label("a", a), side_label("b", b)))
    notes: list[str] = []
    uses_layer = any(get_method(m).takes_layer for m in parse_methods(request_a.methods))
    if not layer_b_given and request_b.layer is not None and uses_layer:
        try:
            b.check_layer(request_b.layer)
        except UserError:
            notes.append(f"B has no usable layer '{request_b.layer}': B uses its default "
                         f"layer {b.default_layer} (--with-layer sets it)")
            request_b = replace(request_b, layer=None)
    check_request(request_a, a)
    try:
        check_request(request_b, b)
    except UserError as exc:
        raise UserError(f"B ({b.name}): {exc}") from None
    return PairModels(a, b, request_a, request_b, matching, device, budget, tuple(notes))


def load_pair(request_a: ExplainRequest, request_b: ExplainRequest, image: Image.Image, *,
              layer_b_given: bool = True, state: JobState | None = None) -> ModelPair:
    """Load both models (:func:`load_models`), prepare the image for each and check that
    the pair fits the memory budget on ``request_a.device``; then move them there.
    Refusals are one-line UserErrors, raised before any model call on the device."""
    return load_models(request_a, request_b, layer_b_given=layer_b_given,
                       state=state).on_image(image)


# -- the comparison's model calls ---------------------------------------------------------------
class _Labelled:
    """A JobState that prefixes each message with the side ('A: Grad-CAM ...')."""

    def __init__(self, state: JobState | None, label: str) -> None:
        self.state, self.label = state, label

    def set_progress(self, done: int, total: int, message: str = "") -> None:
        if self.state is not None:
            self.state.set_progress(done, total, f"{self.label}: {message}")

    def is_cancelled(self) -> bool:
        return self.state is not None and self.state.is_cancelled()


def _segment_maps(session: Session, request: ExplainRequest, methods: Sequence[str],
                  targets: list[int], segments: Segments, state: JobState | None
                  ) -> tuple[dict[str, MethodMaps], AblationSweep | None]:
    from .attribution import compute

    options = request.method_options()
    sweep = None
    if ABLATION in methods:
        sweep = session.sweep(segments, baseline=request.baseline,
                              aggregation=Aggregation(request.aggregation), state=state)
    maps = {m: compute(session, m, targets, options, state=state, segments=segments,
                       sweep=sweep) for m in methods}
    return maps, sweep


@dataclass(frozen=True)
class Computed:
    """Results computed before for one session with the comparison's options (the
    window's own, for the model it shows): a Grad-CAM pass, an ablation sweep, and
    methods' maps by method. The comparison reuses them; a class they lack is computed
    alone and added (one class's maps do not depend on the other classes asked for, so
    the result equals computing every class at once)."""

    gradcam: GradCamResult | None = None
    sweep: AblationSweep | None = None
    maps: Mapping[str, MethodMaps] = field(default_factory=dict)


def _merged(held: MethodMaps, extra: MethodMaps) -> MethodMaps:
    return replace(held, maps={**held.maps, **extra.maps}, raw={**held.raw, **extra.raw},
                   forward=held.forward + extra.forward,
                   backward=held.backward + extra.backward,
                   seconds=held.seconds + extra.seconds)


def _explain_side(session: Session, request: ExplainRequest, targets: Sequence[int],
                  computed: Computed | None, state: JobState | None) -> ExplainResult:
    """``explain_session`` for ``targets``, reusing ``computed`` (see :class:`Computed`)."""
    from .attribution import compute

    request = replace(request, targets=_indices(targets))
    if computed is None:
        return explain_session(session, request, state=state)
    options = request.method_options()
    maps: dict[str, MethodMaps] = {}
    for method in parse_methods(request.methods):
        held = computed.maps.get(method)
        if held is None and method in GRADCAM_PASS_METHODS and computed.gradcam is not None:
            covered = [c for c in targets if c in computed.gradcam.raw
                       or not get_method(method).per_class]  # the activation: any class
            if covered:  # from the pass itself: no model call
                held = compute(session, method, covered, options, gradcam=computed.gradcam)
        if held is None:
            continue
        missing = [c for c in targets if c not in held.maps]
        if missing:
            held = _merged(held, compute(session, method, missing, options, state=state,
                                         sweep=computed.sweep))
        maps[method] = held
    return explain_session(session, request, state=state, gradcam=computed.gradcam,
                           sweep=computed.sweep, computed=maps)


def compare_sessions(session_a: Session, session_b: Session, request_a: ExplainRequest,
                     request_b: ExplainRequest, *, targets: str = "all",
                     resample: str = NEAREST, matching: ClassMatching | None = None,
                     computed_a: Computed | None = None, computed_b: Computed | None = None,
                     state: JobState | None = None) -> Comparison:
    """The comparison of two sessions on the same image.

    Each side: ``explain_session`` with its request (the targets resolved by name to its
    own indices), its class scores, and the segment methods (ablation, Shapley) on the
    common segments (``engine.compare.common_segments``). The requests share every
    option but the model, weights, working size and layer. ``computed_a`` /
    ``computed_b``: results computed before for that session (:class:`Computed`).
    Cancellable between steps.
    """
    check_resample(resample)
    if session_a.image.original_size != session_b.image.original_size:
        raise UserError("The two sessions hold different images: compare one image.")
    matching = matching or match_classes(session_a.model.categories,
                                         session_b.model.categories)
    state_a, state_b = _Labelled(state, "A"), _Labelled(state, "B")
    pred_a, pred_b = session_a.predict(state_a), session_b.predict(state_b)
    pairs = resolve_targets(matching, pred_a, pred_b, targets)
    targets_a = [p.a for p in pairs if p.a is not None]
    targets_b = [p.b for p in pairs if p.b is not None]
    if not targets_a or not targets_b:
        lacking = "A" if not targets_a else "B"
        raise UserError(f"--target {targets}: {lacking} knows none of these classes, so "
                        "nothing would be compared; name a class both know (shared: "
                        f"{', '.join(p.name for p in matching.shared)}).")
    result_a = _explain_side(session_a, request_a, targets_a, computed_a, state_a)
    result_b = _explain_side(session_b, request_b, targets_b, computed_b, state_b)
    width, height = session_a.image.original_size
    grid = (height, width)
    segment_methods = [m for m in result_a.methods
                       if m in result_b.methods and get_method(m).takes_segments]
    common = None
    maps_a: dict[str, MethodMaps] = {}
    maps_b: dict[str, MethodMaps] = {}
    sweep_a = sweep_b = None
    if segment_methods:
        common = common_segments(pred_a, pred_b, grid, request_a.segments)
        maps_a, sweep_a = _segment_maps(session_a, request_a, segment_methods, targets_a,
                                        common.on(session_a.image.shape, "a"), state_a)
        maps_b, sweep_b = _segment_maps(session_b, request_b, segment_methods, targets_b,
                                        common.on(session_b.image.shape, "b"), state_b)
    side_a = CompareSide(result_a, _scores(session_a, request_a), maps_a, sweep_a,
                         request_a.aggregation)
    side_b = CompareSide(result_b, _scores(session_b, request_b), maps_b, sweep_b,
                         request_b.aggregation)
    return compare(side_a, side_b, grid, matching=matching, common=common,
                   resample=resample)


# -- ablating in both models ----------------------------------------------------------------------
@dataclass(frozen=True)
class PairAblation:
    """The same segments ablated in both models: each model's outcome on its own working
    grid (None where the segments are too small to reach that grid)."""

    segment_ids: tuple[int, ...]
    a: AblationOutcome | None
    b: AblationOutcome | None
    segments_a: Segments  # the common segments on each model's working grid
    segments_b: Segments

    def outcome(self, side: str) -> AblationOutcome | None:
        return self.a if side == "a" else self.b

    def segments(self, side: str) -> Segments:
        return self.segments_a if side == "a" else self.segments_b


def ablate_both(session_a: Session, session_b: Session, common: CommonSegments,
                segment_ids: Iterable[int], *, baseline: str = "zero",
                state: JobState | None = None) -> PairAblation:
    """Ablate ``segment_ids`` of ``common`` (the common segments, or a drawn region:
    ``engine.compare.region``) in both models, each on its own working grid, as
    :meth:`Session.ablate` does for one model (its scores, its new prediction)."""
    chosen = tuple(sorted({int(i) for i in segment_ids}))
    if not chosen:
        raise UserError("Choose at least one segment to ablate.")
    outcomes: list[AblationOutcome | None] = []
    on_grid: list[Segments] = []
    for side, session in (("a", session_a), ("b", session_b)):
        segments = common.on(session.image.shape, side)
        known = set(segments.id_list)
        ids = [i for i in chosen if i in known]
        on_grid.append(segments)
        outcomes.append(session.ablate(segments, ids, baseline=baseline,
                                       state=_Labelled(state, side.upper())) if ids else None)
    return PairAblation(chosen, outcomes[0], outcomes[1], on_grid[0], on_grid[1])


def _indices(targets: Sequence[int]) -> str:
    return ",".join(str(int(c)) for c in targets)


def _scores(session: Session, request: ExplainRequest) -> np.ndarray:
    return np.asarray(session.scores(Aggregation(request.aggregation)), np.float32)
