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
alone keeps less). What the device can give is its free memory (CUDA's
``mem_get_info``, the CPU's ``MemAvailable``) plus what models already on it take, or
``SEGEXPLORER_DEVICE_MEMORY`` (e.g. ``6GiB``) when set: the seam that tests (and a user
sharing a GPU) use to give the comparison less than the device has.
"""

from __future__ import annotations

import os
import re
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

MEMORY_ENV = "SEGEXPLORER_DEVICE_MEMORY"
PROBE_SIDE = 64  # the pass estimate's probe: this many pixels on the shorter side
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40}


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop returns


def parse_bytes(text: str) -> int:
    """'6GiB', '512 MB', '2e9' -> bytes; a one-line UserError otherwise."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise UserError(f"{MEMORY_ENV}='{text}' is not an amount of memory: use e.g. 6GiB, "
                        "512MB or a number of bytes.")
    return int(float(match.group(1)) * _UNITS[unit])


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


def _cpu_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # other Unixes: free pages (less than what could be made available)
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def device_available(device: torch.device) -> tuple[int | None, str]:
    """(bytes the device can give now, where that figure comes from); None: unknown."""
    env = os.environ.get(MEMORY_ENV, "").strip()
    if env:
        return parse_bytes(env), MEMORY_ENV
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free), f"free on {device}"
    if device.type == "cpu":
        return _cpu_available(), "available memory"
    if device.type == "mps":
        try:
            mps = torch.mps
            return (int(mps.recommended_max_memory() - mps.driver_allocated_memory()),
                    "MPS's recommended working set, less what is allocated")
        except (AttributeError, RuntimeError):
            return None, "unknown"
    return None, "unknown"


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
    available: int | None  # None: unknown (never refused)
    source: str  # where ``available`` comes from

    @property
    def largest_pass(self) -> int:
        return max(self.a_pass or 0, self.b_pass or 0)

    @property
    def needed(self) -> int:
        return self.a_bytes + self.b_bytes + self.largest_pass

    @property
    def fits(self) -> bool:
        return self.available is None or self.needed <= self.available

    def describe(self) -> str:
        """One line: both models, the larger pass, the total, the device's room."""
        def shape(s: tuple[int, int]) -> str:
            return f"{s[1]} x {s[0]} px"

        passes = []
        for label, value, s in ((self.labels[0], self.a_pass, self.shapes[0]),
                                (self.labels[1], self.b_pass, self.shapes[1])):
            passes.append(f"{label.split(' ')[0]} {human_bytes(value) if value else '?'} "
                          f"at {shape(s)}")
        room = (f"{human_bytes(self.available)} available ({self.source})"
                if self.available is not None else "available memory unknown")
        return (f"{self.labels[0]} {human_bytes(self.a_bytes)} and {self.labels[1]} "
                f"{human_bytes(self.b_bytes)} of parameters and buffers, a pass with "
                f"gradients up to {human_bytes(self.largest_pass)} ({', '.join(passes)}): "
                f"{human_bytes(self.needed)} on {self.device}, {room}")

    def check(self) -> PairMemory:
        """This, or a one-line UserError when the device cannot hold both."""
        if not self.fits:
            raise UserError(f"The two models do not fit on {self.device}: "
                            f"{self.describe()}. Use a smaller --size / --with-size, "
                            "another --device, or smaller models.")
        return self

    def to_json(self) -> dict[str, object]:
        return {"device": self.device, "parameters_and_buffers_bytes":
                {"a": self.a_bytes, "b": self.b_bytes},
                "pass_estimate_bytes": {"a": self.a_pass, "b": self.b_pass},
                "needed_bytes": self.needed, "available_bytes": self.available,
                "available_from": self.source, "summary": self.describe()}


def pair_memory(a: LoadedModel, b: LoadedModel, shape_a: tuple[int, int],
                shape_b: tuple[int, int], device: torch.device,
                labels: tuple[str, str] = ("A", "B")) -> PairMemory:
    """What ``a`` and ``b`` take on ``device`` at these working sizes, and its room.
    Models already on ``device`` count as room (their memory is in use already)."""
    available, source = device_available(device)
    if available is not None and source != MEMORY_ENV:
        available += sum(model_bytes(m) for m in (a, b) if m.device == device)
    return PairMemory(str(device), labels, model_bytes(a), model_bytes(b),
                      pass_bytes(a, shape_a), pass_bytes(b, shape_b),
                      (shape_a, shape_b), available, source)


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
        return (Session(self.a, self.prepared_a, precision=self.request_a.precision),
                Session(self.b, self.prepared_b, precision=self.request_b.precision))


def side_label(side: str, model: LoadedModel) -> str:
    return f"{side.upper()} ({model.card.path.name if model.card else model.name})"


def _load_side(request: ExplainRequest, side: str, flag: str,
               state: JobState | None) -> LoadedModel:
    try:
        return load_model(request.model, request.weights, "cpu",
                          allow_download=request.allow_download, state=state)
    except UserError as exc:
        raise UserError(f"{side.upper()} ({flag} {request.model}): {exc}") from None


def load_pair(request_a: ExplainRequest, request_b: ExplainRequest, image: Image.Image, *,
              layer_b_given: bool = True, state: JobState | None = None) -> ModelPair:
    """Load both models, match their classes, prepare the image for each and check that
    ``request_a.device`` holds both; then move them there.

    ``request_b.layer`` is B's layer; when ``layer_b_given`` is False it is A's
    (``--layer``) and B takes it only if it has a usable layer of that path (two
    checkpoints of one architecture), else its own default layer, with a note.
    Refusals (a model that fails to load, no class in common, a device too small) are
    one-line UserErrors, raised before any model call on the device.
    """
    device = resolve_device(request_a.device)
    parse_methods(request_a.methods)
    request_a.method_options()
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
    prepared_a = prepare_image(image, request_a, a)
    prepared_b = prepare_image(image, request_b, b)
    memory = pair_memory(a, b, prepared_a.shape, prepared_b.shape, device,
                         (side_label("a", a), side_label("b", b))).check()
    a, b = to_device(a, device), to_device(b, device)
    return ModelPair(a, b, request_a, request_b, prepared_a, prepared_b, matching, memory,
                     tuple(notes))


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
