"""Every registered method's maps for all requested classes, from shared model evaluations.

:func:`compute` runs one method of ``engine.methods``' registry on a :class:`Session` and
returns a :class:`MethodMaps`. The rule is the ablation sweep's: each image goes through
the model once and yields every class's score; only gradients are taken per class.

* ``gradcam`` / ``activation``: :meth:`Session.gradcam` (one forward pass, a backward per
  class); ``ablation``: :meth:`Session.sweep` (each segment once).
* ``shapley``: ``engine.shapley`` (each coalition once).
* ``occlusion``: each window once (Captum's Occlusion: windows in its order, the
  difference added over each window, divided by how many windows cover a pixel).
* ``ig`` / ``layer_ig``: the path's images go through the model once, in chunks under the
  memory budget, and each class takes its gradient from the same graph (Captum: the whole
  path per class). Each step's gradient is added in step order, so the sums are the same
  bits however the steps were chunked.
* ``hirescam``: Grad-CAM's pass, without the spatial mean of the gradient.
* ``guided_gradcam``: Grad-CAM (ReLU'd, upsampled) times guided backpropagation, whose
  ReLU hooks are Captum's own construction (a gradient hook on each ``nn.ReLU``'s input
  that keeps its positive part), from one forward pass with a backward per class.

Each equals the library call named in the registry (``MethodInfo.equals``) on the same
wrapped model and input; ``tests/test_methods_parity.py`` compares them.

What a method cost is read from the session's counters (images through the model and
through a backward pass, ``Session.forward_images`` / ``backward_images``), in the unit
of its estimate (``engine.methods.method_cost``), on every device and for any chunking.
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
from .budget import gradient_kind
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
    ImageFacts,
    MethodOptions,
    describe_progress,
    get_method,
    method_cost,
    occlusion_geometry,
    occlusion_shifts,
    shapley_is_exact,
)
from .results import AblationSweep, GradCamResult, MethodMaps
from .segments import Segments
from .session import Session


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
    images, calls, backward = (session.forward_images, session.forward_calls,
                               session.backward_images)
    result = _COMPUTE[method](_Job(session, wanted, options, state, segments, gradcam, sweep))
    settings = options.used_by(method)
    if info.takes_layer:
        layer = result.layer or normalize_layer_path(options.layer or session.model.default_layer)
        settings = tuple((k, layer if k == "layer" else v) for k, v in settings)
    h, w = session.image.shape
    # the estimate's words for what ran (the counts below are its unit too)
    detail = result.detail or method_cost(method, ImageFacts(
        h, w, segments.count if segments is not None else 0, len(wanted)), options).detail
    return MethodMaps(
        method=method, maps=result.maps, raw=result.raw, settings=settings,
        forward=session.forward_images - images, backward=session.backward_images - backward,
        calls=session.forward_calls - calls, seconds=time.perf_counter() - start,
        layer=result.layer, layer_shape=result.layer_shape, detail=detail,
        shapley=result.shapley)


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
    return MethodMaps(GRADCAM, {c: result.upsampled[c] for c in targets},
                      {c: result.raw[c] for c in targets}, (), layer=result.layer,
                      layer_shape=result.activation_shape)


def _activation(job: _Job) -> MethodMaps:
    session, targets, options, state = job.session, job.targets, job.options, job.state
    gradcam = job.gradcam
    layer = normalize_layer_path(options.layer or session.model.default_layer)
    if gradcam is None or gradcam.layer != layer:
        # the pass alone: no target, so no gradient (the activation needs none)
        gradcam = session.gradcam([], layer=layer, state=state)
    return MethodMaps(ACTIVATION, {c: gradcam.activation_upsampled for c in targets},
                      {c: gradcam.activation_mean for c in targets}, (),
                      layer=gradcam.layer, layer_shape=gradcam.activation_shape)


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
    return MethodMaps(ABLATION, {c: sweep.attribution_map(c) for c in targets}, {}, ())


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
    detail = ("" if exact else  # exact: the estimate's words
              f"sampled: {table.n_samples} permutations of {segments.count} segments, "
              f"{table.coalitions - 1} coalitions (seed {table.seed})")
    return MethodMaps(SHAPLEY, {c: table.attribution_map(c) for c in targets}, {}, (),
                      detail=detail, shapley=table)


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
        describe=lambda done, total: describe_progress("Occlusion", done, total, "windows"))
    diffs = initial[None, :] - torch.from_numpy(evaluated.scores)  # windows x C
    index = torch.as_tensor(list(targets), dtype=torch.long)
    total = torch.zeros((len(targets), h, w), dtype=torch.float32)
    count = torch.zeros((h, w), dtype=torch.float32)
    for k, (y0, x0) in enumerate(corners):
        total[:, y0:y0 + wh, x0:x0 + ww] += diffs[k, index].view(-1, 1, 1)
        count[y0:y0 + wh, x0:x0 + ww] += 1
    maps = (total / count).numpy()
    return MethodMaps(OCCLUSION, {c: maps[i] for i, c in enumerate(targets)}, {}, ())


# -- integrated gradients -------------------------------------------------------------------
def _ig_parameters(options: MethodOptions) -> tuple[list[float], list[float]]:
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters(options.ig_method)
    return list(step_sizes(options.n_steps)), list(alphas(options.n_steps))


def _integrate(session: Session, targets: list[int], options: MethodOptions,
               state: JobState | None, label: str, kind: str,
               run: Callable[[list[float]], tuple[torch.Tensor, torch.Tensor]],
               ) -> dict[int, torch.Tensor]:
    """Sum over the path of step size x gradient, for every target, one graph per chunk.

    ``run(alphas)`` builds the chunk's scaled leaf and returns (leaf, class scores). The
    steps go through the model in chunks under the memory budget
    (``Session.run_in_chunks``; ``kind`` names the pass whose memory is measured), and
    each chunk's graph serves a backward pass per target. Each step's scaled gradient is
    added to the target's sum in step order, so the sums do not depend on the chunks.
    Progress moves after the chunk's forward pass and after each target's backward.
    Returns {class: sum over steps} (the leaf's shape without the batch).
    """
    sizes, alphas = _ig_parameters(options)
    n, t = options.n_steps, len(targets)
    units = n * (1 + t)  # each step image forward, then back once per target
    totals: dict[int, torch.Tensor] = {}
    shape: list[tuple[int, ...]] = []
    committed = [0]  # progress units of the chunks that went through

    def chunk(first: int, count: int) -> None:
        steps = (f"step {first + 1} of {n}" if count == 1
                 else f"steps {first + 1}-{first + count} of {n}")

        def progress(done: int, detail: str) -> None:  # in images, as its estimate counts
            report(state, done, units, describe_progress(label, done, units, detail))

        progress(committed[0], steps)
        local: dict[int, torch.Tensor] = {}  # kept only once the whole chunk went through
        with torch.enable_grad(), session.numerics():
            leaf, scores = run(alphas[first:first + count])
            shape[:] = [tuple(leaf.shape[1:])]
            progress(committed[0] + count, f"{steps}, gradients")
            step = torch.tensor(sizes[first:first + count]).float().view(count, 1).to(
                leaf.device)
            for i, c in enumerate(targets):
                check_cancelled(state)
                selected = scores[:, c]
                (grad,) = torch.autograd.grad(selected, leaf,
                                              grad_outputs=torch.ones_like(selected),
                                              retain_graph=i < t - 1, allow_unused=True)
                if grad is None:
                    grad = torch.zeros_like(leaf)
                # Captum: grads scaled by the step sizes, then summed over the steps
                scaled = grad.detach().float().contiguous().view(count, -1) * step
                del grad
                acc = scaled[0].clone() if c not in totals else totals[c] + scaled[0]
                for j in range(1, count):
                    acc.add_(scaled[j])
                local[c] = acc
                progress(committed[0] + count * (2 + i), f"{steps}, gradient {i + 1} of {t}")
        totals.update(local)
        committed[0] += count * (1 + t)

    session.run_in_chunks(n, chunk, kind=kind, what="integration step", state=state,
                          backward_per_image=t)
    report(state, units, units, describe_progress(label, units, units, "done"))
    return {c: v.view(shape[0]) for c, v in totals.items()}


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

    totals = _integrate(session, targets, options, state, "Integrated gradients",
                        gradient_kind(IG), run)
    diff = (inp - base)[0].float()
    maps = {c: (totals[c] * diff).sum(dim=0).cpu().numpy() for c in targets}
    return MethodMaps(IG, maps, {}, ())


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

    totals = _integrate(session, targets, options, state, "Layer integrated gradients",
                        gradient_kind(f"{LAYER_IG}:{path}"), run)
    diff = (at_input - at_base)[0]
    size = session.image.shape
    raw: dict[int, np.ndarray] = {}
    maps: dict[int, np.ndarray] = {}
    for c in targets:
        summed = (totals[c] * diff).sum(dim=0, keepdim=True).unsqueeze(0)  # 1 x 1 x h x w
        raw[c] = summed[0, 0].cpu().numpy()
        maps[c] = _upsample(summed, size, options.upsample)[0, 0].cpu().numpy()
    return MethodMaps(LAYER_IG, maps, raw, (), layer=path, layer_shape=tuple(at_input.shape))


# -- HiResCAM -------------------------------------------------------------------------------
def _hirescam(job: _Job) -> MethodMaps:
    session, targets, options, state = job.session, job.targets, job.options, job.state
    agg = Aggregation(options.aggregation)
    path = normalize_layer_path(options.layer or session.model.default_layer)
    size = session.image.shape
    raw: dict[int, np.ndarray] = {}
    maps: dict[int, np.ndarray] = {}
    report(state, 0, 1, "HiResCAM: forward pass")
    with session.guard_memory(), session.graph_from_layer(path) as captured, \
            torch.enable_grad(), session.numerics():
        logits = session.model.logits(session.layout(session.input)).float()
        session.count_forward(1)
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
            session.count_backward(1)
            with torch.no_grad():
                cam = torch.sum(grad.float() * activation.detach().float(), dim=1, keepdim=True)
            raw[c] = cam[0, 0].cpu().numpy()
            maps[c] = _upsample(cam, size, options.upsample)[0, 0].cpu().numpy()
        shape = tuple(activation.shape)
    return MethodMaps(HIRESCAM, maps, raw, (), layer=path, layer_shape=shape)


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
    size = session.image.shape
    maps: dict[int, np.ndarray] = {}
    report(state, 0, 1, "Guided backpropagation: forward pass")
    inp = session.input.detach().clone().requires_grad_(True)
    with session.guard_memory(), guided_relus(session.model.module), torch.enable_grad(), \
            session.numerics():
        logits = session.model.logits(session.layout(inp)).float()
        session.count_forward(1)
        scores = session.aggregate(logits, agg)
        for i, c in enumerate(targets):
            check_cancelled(state)
            report(state, i, len(targets), f"Guided backpropagation: class {c}")
            (guided,) = torch.autograd.grad(scores[0, c], inp,
                                            retain_graph=i < len(targets) - 1)
            session.count_backward(1)
            cam = F.relu(torch.from_numpy(result.raw[c]).to(inp.device)).view(
                1, 1, *result.raw[c].shape)
            product = guided.detach().float() * _upsample(cam, size, options.upsample)
            maps[c] = product.sum(dim=1)[0].cpu().numpy()
    return MethodMaps(GUIDED_GRADCAM, maps, {}, (), layer=result.layer,
                      layer_shape=result.activation_shape)


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
