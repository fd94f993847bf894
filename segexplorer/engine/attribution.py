"""Every registered method's maps for all requested classes, from shared model evaluations.

:func:`compute` runs one method of ``engine.methods``' registry on a :class:`Session` and
returns a :class:`MethodMaps`. The rule is the ablation sweep's: each image goes through
the model once and yields every class's score; only gradients are taken per class.

* ``gradcam`` / ``activation``: :meth:`Session.gradcam` (one forward pass, a backward per
  class); ``ablation``: :meth:`Session.sweep` (each segment once).
* ``shapley``: ``engine.shapley`` (each coalition once).
* ``occlusion``: each window once (Captum's Occlusion: windows in its order, the
  difference added over each window, divided by how many windows cover a pixel).
* ``ig`` / ``layer_ig``: the path's images go through the model once, in chunks, and
  each class takes its gradient from the same graph (Captum: the whole path per class).
* ``hirescam``: Grad-CAM's pass, without the spatial mean of the gradient.
* ``guided_gradcam``: Grad-CAM (ReLU'd, upsampled) times guided backpropagation, whose
  ReLU hooks are Captum's own construction (a gradient hook on each ``nn.ReLU``'s input
  that keeps its positive part), from one forward pass with a backward per class.

Each equals the library call named in the registry (``MethodInfo.equals``) on the same
wrapped model and input; ``tests/test_methods_parity.py`` compares them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .aggregation import Aggregation
from .baselines import parse_baseline
from .errors import UserError
from .jobs import JobState, check_cancelled, report
from .layers import UNUSED_REASON, get_layer, normalize_layer_path, unusable_output_reason
from .methods import (
    ABLATION,
    ACTIVATION,
    GRADCAM,
    GUIDED_GRADCAM,
    HIRESCAM,
    IG,
    LAYER_IG,
    METHODS,
    OCCLUSION,
    SHAPLEY,
    MethodOptions,
    get_method,
    occlusion_geometry,
    occlusion_shifts,
    shapley_is_exact,
)
from .results import AblationSweep, GradCamResult, MethodMaps
from .segments import Segments
from .session import Session

#: images per chunk of a gradient method on a CPU: about a megapixel (one 640 x 860 image)
CPU_CHUNK_PIXELS = 1 << 20


def compute(session: Session, method: str, targets: Sequence[int] | None = None,
            options: MethodOptions | None = None, *, state: JobState | None = None,
            segments: Segments | None = None, gradcam: GradCamResult | None = None,
            sweep: AblationSweep | None = None) -> MethodMaps:
    """``method``'s maps for ``targets`` (default: every predicted class).

    ``segments`` (Shapley, ablation) default to the prediction's by ``options.segments``;
    ``gradcam`` and ``sweep``, computed before with the same options, are reused.
    """
    info = get_method(method)
    options = (options or MethodOptions()).check()
    prediction = session.predict(state)
    wanted = list(prediction.present_classes if targets is None else targets)
    for c in wanted:
        if not 0 <= c < session.model.num_classes:
            raise UserError(f"Class index {c} is out of range: this model has classes "
                            f"0..{session.model.num_classes - 1}.")
    if info.takes_segments and segments is None:
        segments = prediction.segments(options.segments)
    start = time.perf_counter()
    passes = session.forward_passes
    result = _COMPUTE[method](_Job(session, wanted, options, state, segments, gradcam, sweep))
    settings = options.used_by(method)
    if info.takes_layer:
        layer = result.layer or normalize_layer_path(options.layer or session.model.default_layer)
        settings = tuple((k, layer if k == "layer" else v) for k, v in settings)
    return MethodMaps(
        method=method, maps=result.maps, raw=result.raw, settings=settings,
        forward=result.forward if result.forward >= 0 else session.forward_passes - passes,
        backward=result.backward, seconds=time.perf_counter() - start, layer=result.layer,
        layer_shape=result.layer_shape, detail=result.detail, shapley=result.shapley)


@dataclass(frozen=True)
class _Job:
    """What one method's computation is given."""

    session: Session
    targets: list[int]
    options: MethodOptions
    state: JobState | None
    segments: Segments | None  # Shapley's players, ablation's features
    gradcam: GradCamResult | None  # a Grad-CAM pass to reuse, if it fits
    sweep: AblationSweep | None  # an ablation sweep to reuse, if it fits


# -- the three seed methods, through the same door -----------------------------------------
def _gradcam_result(session: Session, targets: list[int], options: MethodOptions,
                    state: JobState | None, gradcam: GradCamResult | None) -> GradCamResult:
    layer = normalize_layer_path(options.layer or session.model.default_layer)
    if (gradcam is not None and gradcam.layer == layer
            and gradcam.aggregation == options.aggregation
            and gradcam.upsample == options.upsample
            and all(c in gradcam.raw for c in targets)):
        return gradcam
    return session.gradcam(targets, layer=layer, aggregation=Aggregation(options.aggregation),
                           upsample=options.upsample, state=state)


def _gradcam(job: _Job) -> MethodMaps:
    session, targets, options, state = job.session, job.targets, job.options, job.state
    gradcam = job.gradcam
    result = _gradcam_result(session, targets, options, state, gradcam)
    fresh = result is not gradcam
    return MethodMaps(GRADCAM, {c: result.upsampled[c] for c in targets},
                      {c: result.raw[c] for c in targets}, (), forward=1 if fresh else 0,
                      backward=result.backward_passes if fresh else 0, layer=result.layer,
                      layer_shape=result.activation_shape)


def _activation(job: _Job) -> MethodMaps:
    session, targets, options, state = job.session, job.targets, job.options, job.state
    gradcam = job.gradcam
    layer = normalize_layer_path(options.layer or session.model.default_layer)
    if gradcam is None or gradcam.layer != layer:
        # the pass alone: no target, so no gradient (the activation needs none)
        gradcam = session.gradcam([], layer=layer, state=state)
        forward = 1
    else:
        forward = 0
    return MethodMaps(ACTIVATION, {c: gradcam.activation_upsampled for c in targets},
                      {c: gradcam.activation_mean for c in targets}, (), forward=forward,
                      layer=gradcam.layer, layer_shape=gradcam.activation_shape,
                      detail="the same map for every class")


def _ablation(job: _Job) -> MethodMaps:
    session, targets, options, state = job.session, job.targets, job.options, job.state
    segments, sweep = job.segments, job.sweep
    assert segments is not None
    base = parse_baseline(options.baseline)
    fresh = not (sweep is not None and sweep.baseline == base.label
                 and sweep.aggregation == options.aggregation
                 and np.array_equal(sweep.segments.ids, segments.ids))
    if fresh:
        sweep = session.sweep(segments, baseline=base, aggregation=Aggregation(options.aggregation),
                              state=state)
    assert sweep is not None
    return MethodMaps(ABLATION, {c: sweep.attribution_map(c) for c in targets}, {}, (),
                      forward=sweep.forward_passes if fresh else 0,
                      detail=f"{sweep.segments.count} segments")


# -- Shapley values -------------------------------------------------------------------------
def _shapley(job: _Job) -> MethodMaps:
    session, targets, options, state = job.session, job.targets, job.options, job.state
    segments = job.segments
    from .shapley import shapley_table

    assert segments is not None
    exact = shapley_is_exact(segments.count, options)
    table = shapley_table(session, segments, exact=exact, baseline=options.baseline,
                          aggregation=Aggregation(options.aggregation),
                          n_samples=options.n_samples, seed=options.seed, state=state)
    detail = (f"exact: 2^{segments.count} coalitions" if exact else
              f"sampled: {table.n_samples} permutations, {table.coalitions} coalitions, "
              f"seed {table.seed}")
    return MethodMaps(SHAPLEY, {c: table.attribution_map(c) for c in targets}, {}, (),
                      forward=-1, detail=detail, shapley=table)


# -- occlusion ------------------------------------------------------------------------------
def _occlusion(job: _Job) -> MethodMaps:
    session, targets, options, state = job.session, job.targets, job.options, job.state
    agg = Aggregation(options.aggregation)
    h, w = session.image.shape
    wh, ww, sy, sx = occlusion_geometry(h, w, options)
    ny, nx = occlusion_shifts(h, w, options)
    # Captum's feature order: the first dimension (down) varies fastest
    corners = [(iy * sy, ix * sx) for ix in range(nx) for iy in range(ny)]
    base = session.baseline_value(options.baseline)
    device = session.model.device
    ys = torch.arange(h, device=device).view(1, 1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, 1, w)

    def batch(first: int, count: int) -> torch.Tensor:
        y0 = torch.as_tensor([c[0] for c in corners[first:first + count]],
                             device=device).view(-1, 1, 1, 1)
        x0 = torch.as_tensor([c[1] for c in corners[first:first + count]],
                             device=device).view(-1, 1, 1, 1)
        mask = ((ys >= y0) & (ys < y0 + wh) & (xs >= x0) & (xs < x0 + ww)).to(
            session.input.dtype)
        return session.input * (1 - mask) + base * mask  # Captum's construction

    initial = torch.from_numpy(session.scores(agg).astype(np.float32))
    evaluated = session.evaluate(
        len(corners), batch, aggregation=agg, state=state, what="window",
        describe=lambda done, total: f"Occlusion: {done} of {total} windows")
    diffs = initial[None, :] - torch.from_numpy(evaluated.scores)  # windows x C
    index = torch.as_tensor(list(targets), dtype=torch.long)
    total = torch.zeros((len(targets), h, w), dtype=torch.float32)
    count = torch.zeros((h, w), dtype=torch.float32)
    for k, (y0, x0) in enumerate(corners):
        total[:, y0:y0 + wh, x0:x0 + ww] += diffs[k, index].view(-1, 1, 1)
        count[y0:y0 + wh, x0:x0 + ww] += 1
    maps = (total / count).numpy()
    return MethodMaps(OCCLUSION, {c: maps[i] for i, c in enumerate(targets)}, {}, (),
                      forward=-1, detail=f"{ny} x {nx} windows of {wh} x {ww} px, "
                                         f"stride {sy} x {sx}")


# -- integrated gradients -------------------------------------------------------------------
def _ig_parameters(options: MethodOptions) -> tuple[list[float], list[float]]:
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters(options.ig_method)
    return list(step_sizes(options.n_steps)), list(alphas(options.n_steps))


def _step_chunks(session: Session, n_steps: int, pixels: int) -> Iterator[tuple[int, int]]:
    """(first step, count): steps that go through the model together. A CPU takes about a
    megapixel at a time (batching is no faster there); a GPU as many as half its free
    memory holds at about eight times an inference pass's footprint (the graph is kept)."""
    if session.model.device.type == "cuda" and session.image_bytes:
        free, _ = torch.cuda.mem_get_info(session.model.device)
        size = int(free * 0.5 // max(8 * session.image_bytes, 1))
    else:
        size = CPU_CHUNK_PIXELS // max(pixels, 1)
    size = max(1, min(n_steps, size, 64))
    for first in range(0, n_steps, size):
        yield first, min(size, n_steps - first)


def _integrate(session: Session, targets: list[int], options: MethodOptions,
               state: JobState | None, label: str,
               run: Callable[[list[float]], tuple[torch.Tensor, torch.Tensor]],
               ) -> tuple[dict[int, torch.Tensor], int, int]:
    """Sum over the path of step size x gradient, for every target, one graph per chunk.

    ``run(alphas)`` builds the chunk's scaled leaf and returns (leaf, class scores).
    Returns {class: sum over steps} (the leaf's shape without the batch), forward chunks
    and backward passes.
    """
    sizes, alphas = _ig_parameters(options)
    n = options.n_steps
    totals: dict[int, torch.Tensor] = {}
    chunks = backward = 0
    h, w = session.image.shape
    for first, count in _step_chunks(session, n, h * w):
        check_cancelled(state)
        report(state, first, n, f"{label}: steps {first + 1}-{first + count} of {n}")
        with torch.enable_grad(), session.numerics():
            leaf, scores = run(alphas[first:first + count])
            step = torch.tensor(sizes[first:first + count]).float().view(count, 1).to(
                leaf.device)
            for i, c in enumerate(targets):
                check_cancelled(state)
                selected = scores[:, c]
                (grad,) = torch.autograd.grad(selected, leaf,
                                              grad_outputs=torch.ones_like(selected),
                                              retain_graph=i < len(targets) - 1,
                                              allow_unused=True)
                if grad is None:
                    grad = torch.zeros_like(leaf)
                # Captum: grads scaled by the step sizes, then summed over the steps
                scaled = grad.detach().float().contiguous().view(count, -1) * step
                part = scaled.reshape((count, *leaf.shape[1:])).sum(dim=0)
                totals[c] = part if c not in totals else totals[c] + part
                backward += 1
        chunks += 1
        session.forward_passes += 1
    report(state, n, n, f"{label} done")
    return totals, chunks, backward


def _full_baseline(session: Session, options: MethodOptions) -> torch.Tensor:
    """The baseline as an image (Captum's _tensorize_baseline: a scalar fills the input)."""
    return torch.zeros_like(session.input) + session.baseline_value(options.baseline)


def _ig(job: _Job) -> MethodMaps:
    session, targets, options, state = job.session, job.targets, job.options, job.state
    agg = Aggregation(options.aggregation)
    inp = session.input
    base = _full_baseline(session, options)

    def run(alphas: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
        scaled = torch.cat([base + a * (inp - base) for a in alphas], dim=0).requires_grad_()
        logits = session.model.logits(session.layout(scaled)).float()
        return scaled, session.aggregate(logits, agg)

    totals, chunks, backward = _integrate(session, targets, options, state,
                                          "Integrated gradients", run)
    diff = (inp - base)[0].float()
    maps = {c: (totals[c] * diff).sum(dim=0).cpu().numpy() for c in targets}
    return MethodMaps(IG, maps, {}, (), forward=options.n_steps, backward=backward,
                      detail=f"{options.n_steps} steps ({options.ig_method}) in {chunks} "
                             f"pass{'es' if chunks != 1 else ''}, a gradient per class")


@contextmanager
def _replaced_layer(module: nn.Module, path: str, replacement: list[torch.Tensor]
                    ) -> Iterator[None]:
    """Every call of the layer returns ``replacement[0]`` (a copy of it), as Captum's
    LayerIntegratedGradients hook does."""
    layer = get_layer(module, path)

    def hook(_module: nn.Module, _inputs: object, output: object) -> torch.Tensor:
        reason = unusable_output_reason(path, output)
        if reason:
            raise UserError(reason + ".")
        copy: torch.Tensor = replacement[0].clone()  # an in-place op after it is safe
        return copy

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _layer_output(session: Session, path: str, image: torch.Tensor) -> torch.Tensor:
    """The layer's (last) output for ``image`` (Captum's _forward_layer_eval)."""
    return session.layer_output(path, image).float()


def _upsample(raw: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    # Captum's LayerAttribution.interpolate
    return F.interpolate(raw, size, mode=mode)


def _layer_ig(job: _Job) -> MethodMaps:
    session, targets, options, state = job.session, job.targets, job.options, job.state
    agg = Aggregation(options.aggregation)
    path = normalize_layer_path(options.layer or session.model.default_layer)
    inp = session.input
    base = _full_baseline(session, options)
    at_input = _layer_output(session, path, inp)
    at_base = _layer_output(session, path, base)
    replacement: list[torch.Tensor] = []

    def run(alphas: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
        scaled = torch.cat([at_base + a * (at_input - at_base) for a in alphas],
                           dim=0).requires_grad_()
        replacement[:] = [scaled]
        batch = torch.cat([inp] * len(alphas))  # the rest of the network sees the image
        with _replaced_layer(session.model.module, path, replacement):
            logits = session.model.logits(session.layout(batch)).float()
        return scaled, session.aggregate(logits, agg)

    totals, chunks, backward = _integrate(session, targets, options, state,
                                          "Layer integrated gradients", run)
    diff = (at_input - at_base)[0]
    size = session.image.shape
    raw: dict[int, np.ndarray] = {}
    maps: dict[int, np.ndarray] = {}
    for c in targets:
        summed = (totals[c] * diff).sum(dim=0, keepdim=True).unsqueeze(0)  # 1 x 1 x h x w
        raw[c] = summed[0, 0].cpu().numpy()
        maps[c] = _upsample(summed, size, options.upsample)[0, 0].cpu().numpy()
    return MethodMaps(LAYER_IG, maps, raw, (), forward=options.n_steps + 2,
                      backward=backward, layer=path, layer_shape=tuple(at_input.shape),
                      detail=f"{options.n_steps} steps ({options.ig_method}) at {path}")


# -- HiResCAM -------------------------------------------------------------------------------
def _hirescam(job: _Job) -> MethodMaps:
    session, targets, options, state = job.session, job.targets, job.options, job.state
    agg = Aggregation(options.aggregation)
    path = normalize_layer_path(options.layer or session.model.default_layer)
    size = session.image.shape
    raw: dict[int, np.ndarray] = {}
    maps: dict[int, np.ndarray] = {}
    report(state, 0, 1, "HiResCAM: forward pass")
    with session.graph_from_layer(path) as captured, torch.enable_grad(), session.numerics():
        logits = session.model.logits(session.layout(session.input)).float()
        session.forward_passes += 1
        if not captured:
            raise UserError(f"Layer '{path}' is not used by the model's forward pass: "
                            "choose another layer.")
        activation = captured[-1]
        scores = session.aggregate(logits, agg)
        for i, c in enumerate(targets):
            check_cancelled(state)
            report(state, i, len(targets), f"HiResCAM: class {c}")
            (grad,) = torch.autograd.grad(scores[0, c], activation,
                                          retain_graph=i < len(targets) - 1, allow_unused=True)
            if grad is None:
                raise UserError(UNUSED_REASON.format(path=path) + ".")
            with torch.no_grad():
                cam = torch.sum(grad.float() * activation.detach().float(), dim=1, keepdim=True)
            raw[c] = cam[0, 0].cpu().numpy()
            maps[c] = _upsample(cam, size, options.upsample)[0, 0].cpu().numpy()
        shape = tuple(activation.shape)
    return MethodMaps(HIRESCAM, maps, raw, (), forward=1, backward=len(targets), layer=path,
                      layer_shape=shape, detail="one pass, a gradient per class")


# -- Guided Grad-CAM ------------------------------------------------------------------------
@contextmanager
def guided_relus(module: nn.Module) -> Iterator[None]:
    """Guided backpropagation's ReLUs, built as Captum builds them
    (``captum._utils.common._register_backward_hook``): each ``nn.ReLU`` gets a copy of
    its input, and the gradient reaching that input keeps only its positive part."""
    handles = []

    def keep_positive(grad: torch.Tensor) -> torch.Tensor:
        return F.relu(grad)

    def pre_hook(_module: nn.Module, inputs: tuple[object, ...]) -> tuple[object, ...] | None:
        x = inputs[0]
        if isinstance(x, torch.Tensor) and x.requires_grad:
            x.register_hook(keep_positive)  # type: ignore[no-untyped-call]
            return (x.clone(), *inputs[1:])
        return None

    for sub in module.modules():
        if isinstance(sub, nn.ReLU):
            handles.append(sub.register_forward_pre_hook(pre_hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _guided_gradcam(job: _Job) -> MethodMaps:
    session, targets, options, state = job.session, job.targets, job.options, job.state
    gradcam = job.gradcam
    agg = Aggregation(options.aggregation)
    result = _gradcam_result(session, targets, options, state, gradcam)
    fresh = result is not gradcam
    size = session.image.shape
    maps: dict[int, np.ndarray] = {}
    report(state, 0, 1, "Guided backpropagation: forward pass")
    inp = session.input.detach().clone().requires_grad_(True)
    with guided_relus(session.model.module), torch.enable_grad(), session.numerics():
        logits = session.model.logits(session.layout(inp)).float()
        session.forward_passes += 1
        scores = session.aggregate(logits, agg)
        for i, c in enumerate(targets):
            check_cancelled(state)
            report(state, i, len(targets), f"Guided backpropagation: class {c}")
            (guided,) = torch.autograd.grad(scores[0, c], inp,
                                            retain_graph=i < len(targets) - 1)
            cam = F.relu(torch.from_numpy(result.raw[c]).to(inp.device)).view(
                1, 1, *result.raw[c].shape)
            product = guided.detach().float() * _upsample(cam, size, options.upsample)
            maps[c] = product.sum(dim=1)[0].cpu().numpy()
    return MethodMaps(GUIDED_GRADCAM, maps, {}, (), forward=2 if fresh else 1,
                      backward=len(targets) * (2 if fresh else 1), layer=result.layer,
                      layer_shape=result.activation_shape,
                      detail="Grad-CAM's pass and a guided-backpropagation pass")


_COMPUTE: dict[str, Callable[..., MethodMaps]] = {
    GRADCAM: _gradcam,
    ACTIVATION: _activation,
    ABLATION: _ablation,
    SHAPLEY: _shapley,
    OCCLUSION: _occlusion,
    IG: _ig,
    LAYER_IG: _layer_ig,
    HIRESCAM: _hirescam,
    GUIDED_GRADCAM: _guided_gradcam,
}
if tuple(_COMPUTE) != METHODS:  # a registered method without a computation (or the reverse)
    raise AssertionError(f"engine.attribution computes {sorted(_COMPUTE)}, the registry "
                         f"lists {sorted(METHODS)}")
