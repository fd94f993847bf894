"""Can an explanation be trusted? Deletion and insertion curves, a chance band, the
model-randomisation check and Captum's metrics, for every method and target class.

Everything is measured on the seed's argmax-masked score of the **original** prediction
(the wrapper keeps ``out_max``; a multi-label model's own-mask score, each class's logits
over its own original mask, see docs/models.md): a perturbed image, a randomised model or a noisy input
is scored on the same pixels, and a curve's y is the target's score divided by its
original score. docs/evaluation.md defines each metric and says how to read it.

Shared work, where it is exact (one forward pass serves every class's score, as the
ablation sweep does):

* the curves: every image a curve needs (segments or pixels removed, or restored, in
  some ranking's order) is keyed by what it keeps; each distinct image goes through the
  model once, in ``Session.evaluate``'s chunks, and its scores serve every class and
  method that meets it (the all-baseline image, the chance rankings, and the rankings of
  class-independent maps are shared by everyone);
* the randomisation check: at each stage one randomised copy of the model, and each
  method's maps for all targets from its own shared passes;
* infidelity: the noisy images go through the model once for every method and class;
* sensitivity: each perturbed input gives each method's maps for all targets at once.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy import ndimage, stats

from .aggregation import Aggregation
from .attribution import compute
from .evaluation_plan import CURVES, EvaluationSettings
from .jobs import JobState, check_cancelled, report
from .methods import MethodOptions, get_method
from .models import LoadedModel
from .outputs import LogitsAdapter
from .results import AblationSweep, GradCamResult, MethodMaps
from .segments import Segments
from .session import Session

THUMBNAIL = 96  # the randomisation strip's maps are kept at most this wide or tall


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Curve:
    """y (score / original score) at x (the fraction removed or restored)."""

    x: np.ndarray
    y: np.ndarray

    @property
    def auc(self) -> float:
        """Area under the curve by the trapezoid rule, x from 0 to 1."""
        return float(np.trapezoid(self.y, self.x))


@dataclass(frozen=True)
class ChanceBand:
    """The same curve for N random rankings: mean and spread at each x."""

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    aucs: np.ndarray  # one per random ranking

    @property
    def auc_mean(self) -> float:
        return float(self.aucs.mean()) if self.aucs.size else float("nan")

    @property
    def auc_std(self) -> float:
        return float(self.aucs.std()) if self.aucs.size else float("nan")


@dataclass(frozen=True)
class MprtStage:
    """The map after randomising the model's layers from the head down to ``layer``."""

    layer: str  # the last layer randomised (towards the input)
    layers_randomised: int
    spearman: float  # rank correlation with the original map (nan: a constant map)
    ssim: float  # structural similarity of the two maps, each scaled to 0..1
    thumbnail: np.ndarray = field(repr=False)  # the randomised map, small


@dataclass(frozen=True)
class MethodEvaluation:
    """One method for one target class."""

    method: str
    target: int
    curves: dict[str, Curve]  # CURVES
    mprt: tuple[MprtStage, ...] = ()
    infidelity: float | None = None
    sensitivity_max: float | None = None
    survive_threshold: float = 0.5
    thumbnail: np.ndarray | None = field(default=None, repr=False)  # the map, small

    @property
    def survives_randomisation(self) -> bool | None:
        """The map still ranks pixels like the original, or in exactly the reverse
        order, once every stage of the model is random (|Spearman| at the last stage >=
        the threshold: a map whose sign flips but whose ranking stays is no more
        dependent on what the model learned than one that stays); None without the
        check."""
        if not self.mprt or not math.isfinite(self.mprt[-1].spearman):
            return None
        return abs(self.mprt[-1].spearman) >= self.survive_threshold


@dataclass(frozen=True)
class Evaluation:
    """Every method for every target, with the chance bands and what it cost."""

    targets: tuple[int, ...]
    methods: tuple[str, ...]
    results: dict[tuple[str, int], MethodEvaluation]
    chance: dict[int, dict[str, ChanceBand]]  # per target, per curve
    original_scores: np.ndarray  # C
    categories: tuple[str, ...]
    segments: Segments
    settings: EvaluationSettings
    options: MethodOptions
    images: dict[str, int]  # images through the model per stage ('maps', 'curves', ...)
    seconds: float = 0.0
    backward: int = 0  # images through a backward pass, all stages together
    outputs: str = "softmax"  # the model's output kind (engine.outputs): names the score

    @property
    def score_description(self) -> str:
        """What a curve's y divides, in the report's words: the seed's argmax-masked
        score, or a multi-label model's own-mask score (each class's logits summed over
        its own original mask, z_c > logit(threshold))."""
        if self.outputs == "multilabel":
            return ("each class's logits summed over its own mask in the original "
                    "prediction (a multi-label model's own-mask score); y = score / "
                    "original score")
        return "the seed's argmax-masked score of the original prediction; y = " \
            "score / original score"

    def result(self, method: str, target: int) -> MethodEvaluation:
        return self.results[(method, target)]

    def best(self, target: int, curve: str) -> str | None:
        """The method whose curve is best for ``target``: the lowest area for deletion
        (the score falls fastest), the highest for insertion."""
        scored = [(self.result(m, target).curves[curve].auc, m) for m in self.methods]
        scored = [(a, m) for a, m in scored if math.isfinite(a)]
        if not scored:
            return None
        pick = min if curve.startswith("deletion") else max
        return pick(scored)[1]

    def best_methods(self, target: int, curve: str) -> tuple[str, ...]:
        """Every method with the best area under ``curve`` for ``target``: several when
        they tie exactly (none is better than another; :meth:`best` names one of them),
        none when no area is finite."""
        areas = {m: self.result(m, target).curves[curve].auc for m in self.methods}
        finite = [a for a in areas.values() if math.isfinite(a)]
        if not finite:
            return ()
        top = (min if curve.startswith("deletion") else max)(finite)
        return tuple(m for m, a in areas.items() if a == top)

    def verdict(self, method: str, target: int) -> str:
        """One line: how the curves compare with chance, and the randomisation check."""
        r = self.result(method, target)
        parts: list[str] = []
        band = self.chance[target]
        against = []
        for curve, better in (("deletion_pixels", -1), ("insertion_pixels", 1)):
            auc, chance = r.curves[curve].auc, band[curve]
            if not (math.isfinite(auc) and math.isfinite(chance.auc_mean)):
                continue
            spread = max(chance.auc_std, 1e-6)
            z = (auc - chance.auc_mean) / spread
            against.append(better * z)
        if against:
            z = float(np.mean(against))
            if z >= 2:
                parts.append("beats chance clearly")
            elif z > 0.5:
                parts.append("beats chance weakly")
            else:
                parts.append("no better than chance")
        survives = r.survives_randomisation
        if survives is not None:
            parts.append(randomisation_verdict(r.mprt[-1].spearman, survives))
        return "; ".join(parts) if parts else "not measured"

    def to_json(self) -> dict[str, object]:
        """The report's shape (docs/evaluation.md): targets -> method -> curves, chance,
        mprt, infidelity, sensitivity_max; and the settings."""
        targets: dict[str, object] = {}
        for c in self.targets:
            per_method: dict[str, object] = {}
            band = self.chance[c]
            chance = {name: {"x": _floats(b.x), "mean": _floats(b.mean), "std": _floats(b.std),
                             "auc_mean": _float(b.auc_mean), "auc_std": _float(b.auc_std)}
                      for name, b in band.items()}
            for m in self.methods:
                r = self.result(m, c)
                entry: dict[str, object] = {
                    name: {"points": [[_float(x), _float(y)] for x, y in zip(cv.x, cv.y)],
                           "auc": _float(cv.auc)}
                    for name, cv in r.curves.items()}
                entry["chance"] = chance
                entry["mprt"] = [{"layer": s.layer, "layers_randomised": s.layers_randomised,
                                  "spearman": _float(s.spearman), "ssim": _float(s.ssim)}
                                 for s in r.mprt]
                entry["survives_randomisation"] = r.survives_randomisation
                entry["infidelity"] = _float(r.infidelity)
                entry["sensitivity_max"] = _float(r.sensitivity_max)
                entry["verdict"] = self.verdict(m, c)
                per_method[m] = entry
            per_method["best"] = {curve: self.best(c, curve) for curve in CURVES}
            targets[str(c)] = per_method
        return {
            "targets": targets,
            "class_names": {str(c): self.categories[c] for c in self.targets},
            "original_scores": {str(c): _float(self.original_scores[c]) for c in self.targets},
            "settings": {
                **self.settings.as_dict(),
                "methods": list(self.methods),
                "method_options": {k: v for m in self.methods
                                   for k, v in self.options.used_by(m)},
                "score": self.score_description,
                "outputs": self.outputs,
                "segments": {"kind": self.segments.kind, "count": self.segments.count,
                             "partition": self.segments.partition},
                "pixel_ties": "pixels of equal attribution keep raster order (row by row, "
                              "left to right: a stable sort)",
                "segment_ties": "segments of equal summed attribution keep ascending id",
                "infidelity": {"perturbation": "Gaussian noise, std infidelity_std, "
                                               "perturbed input = input - noise",
                               "normalize": True,
                               "attributions": "the map as drawn (H x W), the same on "
                                               "each colour channel"},
                "sensitivity_max": {"perturbation": "uniform noise in the L-infinity ball "
                                                    "of radius sensitivity_radius",
                                    "norm": "Frobenius, as Captum's default"},
            },
            "images_through_the_model": dict(self.images),
            "images_through_a_backward_pass": self.backward,
            "seconds": round(self.seconds, 3),
        }


def _float(value: float | np.floating | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _floats(values: np.ndarray) -> list[float | None]:
    return [_float(v) for v in values]


# ----------------------------------------------------------------------------- rankings
def pixel_ranking(attribution: np.ndarray) -> np.ndarray:
    """Pixels by attribution, largest first; ties keep raster order (a stable sort)."""
    return np.argsort(-attribution.ravel(), kind="stable").astype(np.int64)


def segment_ranking(attribution: np.ndarray, segments: Segments) -> np.ndarray:
    """Segment rows by summed attribution, largest first; ties keep ascending id."""
    rows = segments.rows_map().ravel()
    sums = np.bincount(rows, weights=attribution.ravel().astype(np.float64),
                       minlength=segments.count)
    return np.argsort(-sums, kind="stable").astype(np.int64)


def step_counts(total: int, steps: int) -> list[int]:
    """How many items are removed after each of ``steps`` equal steps (0 .. total)."""
    return [round(j * total / steps) for j in range(steps + 1)]


# ----------------------------------------------------------------------------- images
@dataclass(frozen=True)
class _Kept:
    """One perturbed image: the pixels kept from the input (the rest is the baseline)."""

    kind: str  # 'segments' (bitmask of kept rows) or 'pixels'
    rows: int = 0  # kept segment rows as a bitmask
    ranking: str = ""  # the pixel ranking's digest
    count: int = 0  # the first ``count`` pixels of the ranking ...
    keep_first: bool = True  # ... are kept (insertion) or removed (deletion)


class _Images:
    """The distinct perturbed images the curves need, each evaluated once."""

    def __init__(self, segments: Segments, pixels: int) -> None:
        self.segments = segments
        self.full_rows = (1 << segments.count) - 1
        self.pixels = pixels
        self.rankings: dict[str, np.ndarray] = {}
        self.keys: dict[_Kept, int] = {}

    def ranking(self, order: np.ndarray) -> str:
        digest = hashlib.sha1(order.tobytes()).hexdigest()
        self.rankings.setdefault(digest, order)
        return digest

    def need(self, kept: _Kept) -> _Kept:
        kept = self._canonical(kept)
        if kept not in (FULL,):
            self.keys.setdefault(kept, len(self.keys))
        return kept

    def _canonical(self, kept: _Kept) -> _Kept:
        """The all-baseline and the original image under one key each."""
        if kept.kind == "pixels":
            kept_count = kept.count if kept.keep_first else self.pixels - kept.count
            if kept_count == 0:
                return EMPTY
            if kept_count == self.pixels:
                return FULL
            return kept
        if kept.rows == 0:
            return EMPTY
        if kept.rows == self.full_rows:
            return FULL
        return kept

    def mask(self, kept: _Kept) -> np.ndarray:
        """H x W bool: the pixels kept."""
        h, w = self.segments.ids.shape
        if kept == EMPTY:
            return np.zeros((h, w), bool)
        if kept.kind == "segments":
            rows = np.array([(kept.rows >> r) & 1 for r in range(self.segments.count)], bool)
            return np.asarray(rows[self.segments.rows_map()])
        order = self.rankings[kept.ranking]
        flat = np.zeros(h * w, bool)
        flat[order[:kept.count]] = True
        if not kept.keep_first:
            flat = ~flat
        return flat.reshape(h, w)


EMPTY = _Kept("empty")
FULL = _Kept("full")


# ----------------------------------------------------------------------------- SSIM
def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two maps, each scaled to 0..1 (a constant map is 0):
    scikit-image's ``structural_similarity`` with its defaults (7 x 7 uniform window,
    K1 = 0.01, K2 = 0.03, sample covariance, data range 1), written with scipy so that
    scikit-image is not needed at run time (tests compare the two)."""
    x, y = _unit(a), _unit(b)
    win = 7
    if min(x.shape) < win:
        win = max(1, min(x.shape) // 2 * 2 - 1)  # an odd window that fits
    ndim = x.ndim
    npts = win ** ndim
    cov_norm = npts / (npts - 1) if npts > 1 else 1.0
    ux = ndimage.uniform_filter(x, size=win)
    uy = ndimage.uniform_filter(y, size=win)
    uxx = ndimage.uniform_filter(x * x, size=win)
    uyy = ndimage.uniform_filter(y * y, size=win)
    uxy = ndimage.uniform_filter(x * y, size=win)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    if pad:
        s = s[pad:-pad, pad:-pad] if s.shape[0] > 2 * pad and s.shape[1] > 2 * pad else s
    return float(s.mean())


def _unit(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def randomisation_verdict(rho: float, survives: bool) -> str:
    """What the last stage's Spearman says, its sign included: +1, the randomised model
    ranks the pixels as the trained one; -1, in exactly the reverse order (the map's
    sign flipped, its structure kept); 0, the ranking is gone, as a faithful map's
    should be."""
    if survives and rho > 0:
        return (f"SURVIVES model randomisation (Spearman {rho:.2f}: the random model ranks "
                "the pixels as the trained one): do not trust it")
    if survives:
        return (f"SURVIVES model randomisation with its sign flipped (Spearman {rho:.2f}: "
                "the random model ranks the pixels in the reverse order): do not trust it")
    return (f"changes when the model is randomised (Spearman {rho:.2f}; near 0, the "
            "ranking is lost; +1 or -1 would be the same ranking or its reverse)")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (nan when one is constant)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a.ravel(), b.ravel()).statistic)


def _thumbnail(a: np.ndarray) -> np.ndarray:
    step = max(1, math.ceil(max(a.shape) / THUMBNAIL))
    return np.ascontiguousarray(a[::step, ::step].astype(np.float32))


# ----------------------------------------------------------------------------- randomisation
def randomisable_layers(module: torch.nn.Module) -> list[str]:
    """Layers with their own parameters and a ``reset_parameters``, from the head
    towards the input (the reverse of ``named_modules``' order, as Quantus's MPRT)."""
    names = [name for name, m in module.named_modules()
             if name and hasattr(m, "reset_parameters")
             and any(True for _ in m.parameters(recurse=False))]
    return names[::-1]


def mprt_checkpoints(layers: int, steps: int) -> list[int]:
    """After how many layers (from the head) the maps are recomputed: geometric from
    the head alone to every layer, since the head changes most maps."""
    if layers == 0:
        return []
    counts = sorted({max(1, min(layers, round(v)))
                     for v in np.geomspace(1, layers, min(steps, layers))})
    return counts


def randomised_models(model: LoadedModel, steps: int, seed: int
                      ) -> Iterator[tuple[str, int, LoadedModel]]:
    """Cascading randomisation of a copy of ``model`` (the model itself is untouched):
    layers re-initialised from the head towards the input with torch's own
    ``reset_parameters`` (seeded), the copy yielded at each checkpoint.

    One stage at a time: the copy is randomised further, in place, once the caller asks
    for the next stage, so one copy of the model is held, not one per stage. The
    re-initialisation draws from its own seeded stream (saved and restored around each
    layer), so what the caller draws between stages changes nothing, and the process's
    random stream is left as it was."""
    layers = randomisable_layers(model.module)
    checkpoints = set(mprt_checkpoints(len(layers), steps))
    if not checkpoints:
        return
    adapter = model.adapter
    assert adapter is not None
    work = copy.deepcopy(model.module).eval().requires_grad_(False)
    randomised = replace(model, module=work,
                         adapter=LogitsAdapter(work, adapter.pad_multiple, binary=adapter.binary))
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        stream = _rng_state(devices)
    for i, name in enumerate(layers, start=1):
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            _set_rng_state(stream, devices)
            work.get_submodule(name).reset_parameters()  # type: ignore[operator]
            stream = _rng_state(devices)
        if i in checkpoints:
            yield name, i, randomised


def _rng_state(devices: list[torch.device]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in devices]


def _set_rng_state(state: tuple[torch.Tensor, list[torch.Tensor]],
                   devices: list[torch.device]) -> None:
    torch.set_rng_state(state[0])
    for d, s in zip(devices, state[1]):
        torch.cuda.set_rng_state(s, d)


# ----------------------------------------------------------------------------- noise
def infidelity_noise(inputs_shape: Sequence[int], samples: int, std: float, seed: int
                     ) -> torch.Tensor:
    """``samples`` Gaussian perturbations of an input (seeded, on the CPU)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((samples, *inputs_shape[1:]), generator=g) * std


def sensitivity_noise(inputs_shape: Sequence[int], samples: int, radius: float, seed: int
                      ) -> torch.Tensor:
    """``samples`` uniform perturbations in the L-infinity ball (Captum's default
    perturbation, seeded)."""
    g = torch.Generator().manual_seed(seed + 1)
    return torch.empty((samples, *inputs_shape[1:])).uniform_(-radius, radius, generator=g)


def infidelity_value(attribution: torch.Tensor, noise: torch.Tensor, original: float,
                     perturbed: torch.Tensor) -> float:
    """captum.metrics.infidelity with ``normalize=True``, from the parts: the same
    float32 operations in the same order."""
    n = noise.shape[0]
    expanded = attribution.expand(n, *attribution.shape[1:])
    a = (expanded * noise).view(n, -1).sum(dim=1).view(1, -1)
    b = (torch.full((n,), original, dtype=perturbed.dtype) - perturbed).view(1, -1)
    t0, t1, t2 = a.pow(2).sum(-1), (a * b).sum(-1), b.pow(2).sum(-1)
    beta = t1 / torch.where(t0 != 0, t0, torch.ones_like(t0))  # Captum's safe_div
    value = (beta * beta * t0 - 2 * beta * t1 + t2) / n
    return float(value[0])


# ----------------------------------------------------------------------------- the evaluation
def evaluate(session: Session, methods: Sequence[str], targets: Sequence[int] | None = None,
             options: MethodOptions | None = None, settings: EvaluationSettings | None = None,
             *, state: JobState | None = None, computed: dict[str, MethodMaps] | None = None,
             gradcam: GradCamResult | None = None, sweep: AblationSweep | None = None
             ) -> Evaluation:
    """Evaluate each method's maps for every target (see the module's docstring).

    ``computed``: maps already at hand (the window's), used when they hold the targets;
    ``gradcam`` and ``sweep``: a Grad-CAM pass and an ablation sweep to reuse (when they
    fit the options).
    """
    start = time.perf_counter()
    options = (options or MethodOptions()).check()
    settings = (settings or EvaluationSettings()).check()
    methods = tuple(dict.fromkeys(methods))
    for m in methods:
        get_method(m)
    prediction = session.predict(state)
    wanted = tuple(prediction.present_classes if targets is None else targets)
    agg = Aggregation(options.aggregation)
    original = session.scores(agg).astype(np.float32)
    segments = prediction.segments(options.segments)
    images: dict[str, int] = {}
    backward_before = session.backward_images
    backward_derived = 0  # the randomised models' and perturbed inputs' sessions

    # 1. the maps, each method once for every target
    passes = session.forward_images
    maps: dict[str, MethodMaps] = {}
    for m in methods:
        check_cancelled(state)
        given = (computed or {}).get(m)
        if given is not None and all(c in given.maps for c in wanted):
            maps[m] = given
        else:
            maps[m] = compute(session, m, list(wanted), options, state=state,
                              segments=segments if get_method(m).takes_segments else None,
                              gradcam=gradcam, sweep=sweep)
    images["maps"] = session.forward_images - passes

    # 2. the curves: every distinct image once
    h, w = prediction.shape
    pool = _Images(segments, h * w)
    rng = np.random.default_rng(settings.seed)
    chance_segments = [rng.permutation(segments.count) for _ in range(settings.chance_runs)]
    chance_pixels = [pool.ranking(rng.permutation(h * w).astype(np.int64))
                     for _ in range(settings.chance_runs)]
    seg_counts = list(range(segments.count + 1))
    pix_counts = step_counts(h * w, settings.pixel_steps)

    def segment_curves(order: np.ndarray) -> tuple[list[_Kept], list[_Kept]]:
        deletion, insertion = [], []
        for k in seg_counts:
            removed = sum(1 << int(r) for r in order[:k])
            deletion.append(pool.need(_Kept("segments", rows=pool.full_rows & ~removed)))
            insertion.append(pool.need(_Kept("segments", rows=removed)))
        return deletion, insertion

    def pixel_curves(digest: str) -> tuple[list[_Kept], list[_Kept]]:
        deletion = [pool.need(_Kept("pixels", ranking=digest, count=n, keep_first=False))
                    for n in pix_counts]
        insertion = [pool.need(_Kept("pixels", ranking=digest, count=n, keep_first=True))
                     for n in pix_counts]
        return deletion, insertion

    plans: dict[tuple[str, int], dict[str, list[_Kept]]] = {}
    for m in methods:
        for c in wanted:
            attr = maps[m].maps[c]
            d_seg, i_seg = segment_curves(segment_ranking(attr, segments))
            d_pix, i_pix = pixel_curves(pool.ranking(pixel_ranking(attr)))
            plans[(m, c)] = {"deletion_segments": d_seg, "insertion_segments": i_seg,
                             "deletion_pixels": d_pix, "insertion_pixels": i_pix}
    chance_plans: list[dict[str, list[_Kept]]] = []
    for order, digest in zip(chance_segments, chance_pixels):
        d_seg, i_seg = segment_curves(order)
        d_pix, i_pix = pixel_curves(digest)
        chance_plans.append({"deletion_segments": d_seg, "insertion_segments": i_seg,
                             "deletion_pixels": d_pix, "insertion_pixels": i_pix})
    ordered = list(pool.keys)
    base = torch.zeros_like(session.input) + session.baseline_value(options.baseline)
    device = session.model.device

    def batch(first: int, count: int) -> torch.Tensor:
        keep = np.stack([pool.mask(k) for k in ordered[first:first + count]])
        keep_t = torch.as_tensor(keep, device=device).unsqueeze(1)
        return torch.where(keep_t, session.input, base)

    evaluated = session.evaluate(
        len(ordered), batch, aggregation=agg, state=state, what="image",
        describe=lambda done, total: f"Evaluation: {done} of {total} perturbed images")
    images["curves"] = len(ordered)
    scores: dict[_Kept, np.ndarray] = dict(zip(ordered, evaluated.scores))
    scores[FULL] = original

    def curve(keys: list[_Kept], c: int, steps: int) -> Curve:
        x = np.linspace(0.0, 1.0, steps + 1)
        denominator = float(original[c])
        y = np.array([float(scores[k][c]) / denominator if denominator else float("nan")
                      for k in keys])
        return Curve(x, y)

    steps_of = {"deletion_segments": segments.count, "insertion_segments": segments.count,
                "deletion_pixels": settings.pixel_steps, "insertion_pixels": settings.pixel_steps}
    curves = {key: {name: curve(keys, key[1], steps_of[name]) for name, keys in plan.items()}
              for key, plan in plans.items()}
    chance: dict[int, dict[str, ChanceBand]] = {}
    for c in wanted:
        chance[c] = {}
        for name in CURVES:
            runs = [curve(p[name], c, steps_of[name]) for p in chance_plans]
            x = np.linspace(0.0, 1.0, steps_of[name] + 1)
            ys = np.array([r.y for r in runs]) if runs else np.zeros((0, len(x)))
            chance[c][name] = ChanceBand(
                x, ys.mean(0) if runs else np.full(len(x), np.nan),
                ys.std(0) if runs else np.full(len(x), np.nan),
                np.array([r.auc for r in runs]))

    # 3. the model-randomisation check
    mprt: dict[tuple[str, int], list[MprtStage]] = {key: [] for key in plans}
    if settings.mprt:
        passes = session.forward_images
        report(state, 0, 1, "Randomising the model's layers")
        stage_count = len(mprt_checkpoints(len(randomisable_layers(session.model.module)),
                                           settings.mprt_steps))
        stages = randomised_models(session.model, settings.mprt_steps, settings.seed)
        mprt_images = 0
        for i, (layer, count, random_model) in enumerate(stages):
            check_cancelled(state)
            report(state, i, stage_count, f"Randomisation check: stage {i + 1} of "
                                          f"{stage_count} ({layer})")
            derived = session.derive(model=random_model)
            for m in methods:
                again = compute(derived, m, list(wanted), options, state=state,
                                segments=segments if get_method(m).takes_segments else None)
                for c in wanted:
                    a, b = maps[m].maps[c], again.maps[c]
                    mprt[(m, c)].append(MprtStage(layer, count, spearman(a, b), ssim(a, b),
                                                  _thumbnail(b)))
            mprt_images += derived.forward_images
            backward_derived += derived.backward_images
        images["mprt"] = mprt_images + session.forward_images - passes

    # 4. Captum's infidelity (normalize=True), the noisy images shared
    infid: dict[tuple[str, int], float] = {}
    if settings.infidelity:
        noise = infidelity_noise(tuple(session.input.shape), settings.infidelity_samples,
                                 settings.infidelity_std, settings.seed)
        noise_d = noise.to(device)

        def noisy(first: int, count: int) -> torch.Tensor:
            return session.input - noise_d[first:first + count]

        perturbed = session.evaluate(
            len(noise), noisy, aggregation=agg, state=state, what="noisy image",
            describe=lambda done, total: f"Infidelity: {done} of {total} noisy images")
        images["infidelity"] = len(noise)
        perturbed_t = torch.from_numpy(perturbed.scores)
        for key in plans:
            m, c = key
            attribution = torch.from_numpy(np.ascontiguousarray(maps[m].maps[c])).float()
            attribution = attribution.view(1, 1, h, w).expand(1, 3, h, w)
            infid[key] = infidelity_value(attribution, noise, float(original[c]),
                                          perturbed_t[:, c])

    # 5. Captum's sensitivity_max, each perturbed input serving every target
    sens: dict[tuple[str, int], float] = {}
    if settings.sensitivity:
        noise = sensitivity_noise(tuple(session.input.shape), settings.sensitivity_samples,
                                  settings.sensitivity_radius, settings.seed).to(device)
        sens_images = 0
        worst: dict[tuple[str, int], float] = {key: -math.inf for key in plans}
        for k in range(noise.shape[0]):
            check_cancelled(state)
            report(state, k, noise.shape[0], f"Sensitivity: perturbed input {k + 1} of "
                                             f"{noise.shape[0]}")
            derived = session.derive(input_tensor=session.input + noise[k:k + 1])
            for m in methods:
                again = compute(derived, m, list(wanted), options, state=state,
                                segments=segments if get_method(m).takes_segments else None)
                for c in wanted:
                    worst[(m, c)] = max(worst[(m, c)],
                                        sensitivity_value(maps[m].maps[c], again.maps[c]))
            sens_images += derived.forward_images
            backward_derived += derived.backward_images
        sens = worst
        images["sensitivity"] = sens_images

    results = {
        key: MethodEvaluation(key[0], key[1], curves[key], tuple(mprt[key]),
                              infid.get(key), sens.get(key), settings.survive_threshold,
                              _thumbnail(maps[key[0]].maps[key[1]]))
        for key in plans}
    report(state, 1, 1, "Evaluation done")
    return Evaluation(targets=wanted, methods=methods, results=results, chance=chance,
                      original_scores=original, categories=prediction.categories,
                      segments=segments, settings=settings, options=options, images=images,
                      seconds=time.perf_counter() - start,
                      backward=session.backward_images - backward_before + backward_derived,
                      outputs=prediction.outputs)


def sensitivity_value(original: np.ndarray, perturbed: np.ndarray) -> float:
    """One perturbed input's term of captum.metrics.sensitivity_max: the Frobenius norm
    of the change over that of the original map (1 when the original is all zero)."""
    a = torch.from_numpy(np.ascontiguousarray(original)).float().view(1, -1)
    b = torch.from_numpy(np.ascontiguousarray(perturbed)).float().view(1, -1)
    norm = torch.norm(a, p="fro", dim=1, keepdim=True)
    norm = torch.where(norm == 0.0, torch.tensor(1.0), norm)
    return float(torch.norm(a - b, p="fro", dim=1, keepdim=True)[0, 0] / norm[0, 0])
