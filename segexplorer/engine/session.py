"""One image with one model: prediction, Grad-CAM, activation, the ablation sweep.

The two ideas that make the engine cheaper than calling Captum per class:

* One forward pass serves Grad-CAM for every class: the graph is kept only from the
  chosen layer onwards (the layer's output is detached and becomes the leaf that
  gradients are taken against), and one gradient per class is read from it.
* One ablation sweep serves every target and every click: each segment is ablated
  once and the aggregated score of *every* class is recorded, giving a
  segments x classes table from which FeatureAblation for any target is a lookup.

Both use Captum's own operations (the same reductions in the same order), so the
numbers equal Captum's calls; tests check it.

Work is counted in one unit on every device: images through the model
(``forward_images``; a batch of four counts four) and images through a backward pass
(``backward_images``); the model calls that carried them are counted apart
(``forward_calls``). Every batched path runs through :meth:`Session.run_in_chunks`, which
sizes its chunks from the memory budget (``engine.budget``) and the memory one image
takes, measured by the first chunk (``session.memory``, ``engine.chunking``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .aggregation import (
    ARGMAX_MASKED,
    PLAIN_SUM,
    Aggregation,
    aggregate,
    argmax_selection,
    multilabel_display,
    multilabel_selection,
    pack_label_sets,
)
from .baselines import Baseline, baseline_tensor, parse_baseline
from .budget import INFERENCE, MemoryBudget, resolve_budget
from .catalog import PRECISIONS, SOFTMAX, UPSAMPLE_MODES
from .chunking import MAX_CUDA_CHUNK, SessionMemory, tracked
from .errors import UserError
from .image import PreparedImage, denormalize
from .jobs import JobState, check_cancelled, report
from .layers import UNUSED_REASON, get_layer, normalize_layer_path, unusable_output_reason
from .methods import describe_progress
from .models import LoadedModel
from .outputs import multilabel_hint
from .results import AblationSweep, GradCamResult, Prediction, unpack_label_sets
from .segments import Segments


@contextmanager
def strict_fp32() -> Iterator[None]:
    """No TF32 in cuDNN convolutions or CUDA matrix products inside the block.

    Process-wide flags (PyTorch has no per-thread ones), saved and restored; the engine
    runs one model call at a time.
    """
    conv, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = conv
        torch.backends.cuda.matmul.allow_tf32 = matmul


@dataclass(frozen=True)
class Evaluation:
    """Every class's score for a series of perturbed images (Session.evaluate)."""

    scores: np.ndarray  # n x C float32
    maps: np.ndarray | None  # n x H x W predicted classes (when kept; multilabel: display)
    images: int  # images through the model
    calls: int  # model calls that carried them (a call takes a chunk of images)
    batches: tuple[int, ...]  # images per call, in order
    label_sets: np.ndarray | None = None  # multilabel, kept: n x B x H x W packed classes


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or a CPU (or MPS) allocation that failed."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc).lower()
    return any(k in text for k in ("can't allocate memory", "out of memory",
                                   "not enough memory", "failed to allocate"))


def _timed(run: Callable[[int, int], None], first: int, k: int) -> float:
    start = time.perf_counter()
    run(first, k)
    return time.perf_counter() - start


@dataclass(frozen=True)
class AblationOutcome:
    """What the model does when some segments are ablated together."""

    segment_ids: tuple[int, ...]
    baseline: str
    ablated_input: np.ndarray  # H x W x 3 uint8: the input as the model receives it
    before: np.ndarray  # C: aggregated scores of the original input
    after: np.ndarray  # C: aggregated scores with the segments ablated
    class_map_after: np.ndarray  # H x W (multilabel: the display map, see Prediction)
    changed: np.ndarray  # H x W bool: pixels whose predicted class (label set) changed
    from_cache: bool
    masks_after: np.ndarray | None = None  # multilabel: C x H x W bool, each class's mask

    @property
    def delta(self) -> np.ndarray:
        return np.asarray(self.after - self.before, np.float32)

    @property
    def changed_fraction(self) -> float:
        return float(self.changed.mean())


class Session:
    """Analysis of one prepared image with one loaded model.

    Not thread-safe: one worker uses a session at a time (the GUI runs one model job
    at a time per session). Results are plain numpy dataclasses.
    """

    def __init__(self, model: LoadedModel, image: PreparedImage,
                 precision: str = "fp32", budget: MemoryBudget | None = None) -> None:
        if precision not in PRECISIONS:
            raise UserError(f"Unknown precision '{precision}': use fp32 (exact) or bf16 (fast).")
        self.model = model
        # the image as this model wants it (a card may bring its own mean and std)
        self.image = image = image.with_normalization(model.normalization)
        # what one image takes and so how many one call may take (engine.chunking), under
        # the budget (engine.budget; None: the device's default, or SEGEXPLORER_GPU_MEMORY)
        self.memory = SessionMemory(
            model, image.shape, budget if budget is not None else resolve_budget(model.device))
        self.precision = precision
        self.input = image.tensor.to(model.device)
        self._prediction: Prediction | None = None
        self._class_map_t: torch.Tensor | None = None
        self._logits_t: torch.Tensor | None = None  # the unperturbed output, on the device
        self._selected: torch.Tensor | None = None  # one-hot of the original prediction
        self._scores: dict[str, np.ndarray] = {}  # unperturbed scores per aggregation kind
        self._display: np.ndarray | None = None  # the input as displayed (H x W x 3)
        self._baseline_displays: dict[str, np.ndarray] = {}
        self.forward_images = 0  # images through the model (a batch of k counts k)
        self.forward_calls = 0  # model calls that carried them
        self.backward_images = 0  # images through a backward pass (per class, per image)
        self._segment_ids_t: tuple[Segments, torch.Tensor] | None = None
        self._fixed_class_map: torch.Tensor | None = None  # a derived session's (see derive)
        self._fixed_selection: torch.Tensor | None = None  # its classes' masks, likewise

    def derive(self, *, model: LoadedModel | None = None,
               input_tensor: torch.Tensor | None = None) -> Session:
        """A session on another input (a perturbed copy) or another model (one with
        randomised layers) that keeps **this** prediction's pixels: its class scores
        use this prediction's masks (the argmax's, or a multi-label model's own), as the
        seed's wrapper keeps ``out_max``, and its prediction's class map and masks (so
        its segments) are this one's. The evaluation's perturbations and randomisations
        are explained on the same question."""
        derived = Session(model or self.model, self.image, precision=self.precision,
                          budget=self.budget)
        derived.memory.share_measurements(self.memory)  # the same shapes: the same memory
        if input_tensor is not None:
            derived.input = input_tensor.to(derived.model.device)
        derived._fixed_class_map = self.class_map_tensor.to(derived.model.device)
        derived._fixed_selection = self.selection_tensor.to(derived.model.device)
        return derived

    @property
    def budget(self) -> MemoryBudget:
        """What the images of one model call may take (``engine.budget``): the memory's."""
        return self.memory.budget

    @budget.setter
    def budget(self, budget: MemoryBudget) -> None:
        self.memory.budget = budget

    @property
    def forward_passes(self) -> int:
        """Images through the model: :attr:`forward_images`, under its older name (one
        forward pass is one image, however the images were batched)."""
        return self.forward_images

    def count_forward(self, images: int, calls: int = 1) -> None:
        """Record images that went through the model (for methods built on the session)."""
        self.forward_images += images
        self.forward_calls += calls

    def count_backward(self, images: int) -> None:
        """Record images that went through a backward pass (one per class and image)."""
        self.backward_images += images

    @contextmanager
    def guard_memory(self, what: str = "image") -> Iterator[None]:
        """Around a single image's pass: an out-of-memory error becomes one clear line."""
        try:
            yield
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            failed = True
        else:
            failed = False
        if failed:
            self.memory.release()
            raise self.memory.out_of_memory(what)

    def run_in_chunks(self, count: int, run: Callable[[int, int], None], *,
                      kind: str = INFERENCE, what: str = "image",
                      state: JobState | None = None, chunk_size: int | None = None,
                      backward_per_image: int = 0,
                      done: Callable[[int, int], None] | None = None,
                      most: int | None = None, count_work: bool = True) -> tuple[int, ...]:
        """Call ``run(first, k)`` for consecutive chunks of ``count`` images; returns the
        images per chunk, in order.

        Every batched path of the engine goes through here; ``self.memory``
        (``engine.chunking.SessionMemory``) sizes the chunks. ``run`` sends images
        ``first .. first + k - 1`` through the model and keeps its results only when it
        returns (an out-of-memory error may interrupt it: it is then called again with
        fewer images). The chunk size is ``chunk_size`` if given, else as many images as
        the budget holds at the memory one image of ``kind`` takes (at most
        ``memory.preferred_batch``). While that memory is not measured, the first chunk is
        sized from the figure modelled at the prediction (an over-estimate; one image when
        there is none) and measures it. An out-of-memory error halves the chunk; at one
        image it is a one-line UserError. Cancellation is checked between chunks;
        ``done(images finished, count)`` is called after each. Counts images
        (``backward_per_image`` backward images each) and calls when a chunk has gone
        through (unless ``count_work`` is False: images of several sessions, each counting
        its own). ``most`` replaces the device's ``memory.preferred_batch`` as the most
        images per call.
        """
        batches: list[int] = []
        finished = 0
        chunk = chunk_size
        while finished < count:
            check_cancelled(state)
            if chunk is None:
                chunk = self.memory.chunk_within(kind, most)
            probe = chunk is None  # not measured yet: this chunk measures
            if chunk is None:
                modelled = self.memory.modelled_bytes(kind)
                first = 1 if modelled is None else self.memory.images_within(modelled, kind, most)
                k = max(1, min(first, count - finished))
            else:
                k = max(1, min(chunk, count - finished))
            try:
                if probe:
                    with self.memory.measuring(kind, k):
                        seconds = _timed(run, finished, k)
                else:
                    seconds = _timed(run, finished, k)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                failed = True
            else:
                failed = False
            if failed:
                self.memory.release()
                if k == 1:
                    raise self.memory.out_of_memory(what)
                chunk = k // 2
                continue
            if kind == INFERENCE and not probe:  # (a probe's pass pays for its measurement)
                self.memory.record_seconds(seconds / k)
            batches.append(k)
            finished += k
            if count_work:
                self.count_forward(k)
                self.count_backward(k * backward_per_image)
            if probe:
                chunk = None  # sized from the measurement from the next chunk on
            if done is not None:
                done(finished, count)
        return tuple(batches)

    # -- device helpers (engine.attribution's methods call them too) ---------------
    @contextmanager
    def numerics(self) -> Iterator[None]:
        """The arithmetic of the session's precision, around every model call.

        fp32 is IEEE float32 on every device: on CUDA, PyTorch lets cuDNN use TF32 for
        convolutions by default (10-bit mantissa), so it is switched off for the
        engine's calls and restored after, and a GPU's numbers equal the CPU's and
        Captum's strict-fp32 calls to float rounding. bf16 (fast mode, opt-in): autocast.
        """
        if self.precision == "bf16":
            with torch.autocast(self.model.device.type, dtype=torch.bfloat16):
                yield
            return
        if self.model.device.type != "cuda":
            yield
            return
        with strict_fp32():
            yield

    def layout(self, batch: torch.Tensor) -> torch.Tensor:
        """channels-last in fast mode on CUDA, where tensor-core convolutions want it.

        fp32 keeps the default layout so that its numbers stay those of Captum's calls.
        """
        if self.precision == "bf16" and self.model.device.type == "cuda":
            return batch.contiguous(memory_format=torch.channels_last)
        return batch

    # -- what the methods in engine.attribution build on ------------------------------
    def baseline_value(self, baseline: Baseline | str) -> float | torch.Tensor:
        """The baseline in the model's normalised space (a scalar, or 1 x 3 x 1 x 1, or the
        image's size for the blur): what Captum's ``baselines=`` takes."""
        return self._baseline(parse_baseline(baseline))

    # -- prediction ---------------------------------------------------------------
    def predict(self, state: JobState | None = None) -> Prediction:
        """The model's output for the image (cached: at most one forward pass)."""
        if self._prediction is None:
            report(state, 0, 1, "Predicting")
            with self.guard_memory(), torch.inference_mode(), self.numerics(), \
                    self.memory.track():
                start = time.perf_counter()  # the pass alone, not its measurement
                logits = self.model.logits(self.layout(self.input)).float()
                seconds = time.perf_counter() - start
            self.count_forward(1)
            self._set_prediction(logits, seconds)
            report(state, 1, 1, "Predicted")
        assert self._prediction is not None
        return self._prediction

    def _set_prediction(self, logits: torch.Tensor, seconds: float) -> None:
        logits = logits.detach()
        model = self.model
        hint = ""
        if model.multilabel:  # each class's own mask, z_c > logit(threshold)
            selected = (self._fixed_selection if self._fixed_selection is not None
                        else multilabel_selection(logits, model.threshold_logit))
            class_map = (self._fixed_class_map if self._fixed_class_map is not None
                         else multilabel_display(logits[0:1], selected))
        else:
            if self._fixed_class_map is not None:
                class_map = self._fixed_class_map
            else:
                # the seed's out_max; max().indices is argmax (first maximum on ties), 3x
                # faster; its values serve the multi-label guard (untrained: no evidence)
                top = logits.max(dim=1, keepdim=True)
                class_map = top.indices
                if model.outputs == SOFTMAX and not model.untrained:
                    hint = multilabel_hint(top.values)
            selected = argmax_selection(logits, class_map)
        self._class_map_t = class_map
        self._logits_t = logits  # detached: holds no graph
        self._selected = selected
        self._prediction = Prediction(
            image=self.image.rgb,
            logits=logits[0].float().cpu().numpy(),
            class_map=class_map[0, 0].cpu().numpy().astype(np.int64),
            categories=model.categories,
            seconds=seconds,
            palette=model.colors,
            outputs=model.outputs,
            threshold=model.threshold,
            masks=selected[0].bool().cpu().numpy() if model.multilabel else None,
            hint=hint,
        )

    @property
    def class_map_tensor(self) -> torch.Tensor:
        self.predict()
        assert self._class_map_t is not None
        return self._class_map_t

    @property
    def selection_tensor(self) -> torch.Tensor:
        """1 x C x H x W: each class's pixels in the prediction (1 inside, 0 outside): the
        argmax's one-hot, or a multi-label model's own masks z_c > logit(threshold). The
        default score of class c is the sum of z_c over it (``aggregation.make_wrapper``
        takes it)."""
        self.predict()
        assert self._selected is not None
        return self._selected

    def aggregate(self, logits: torch.Tensor, agg: Aggregation) -> torch.Tensor:
        """N x C x H x W logits to N x C class scores, with the original prediction's mask."""
        return aggregate(logits, agg, self.class_map_tensor, self.selection_tensor)

    def _maps_after(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """N x H x W: the classes predicted for perturbed images (multilabel: the display
        map), and for a multi-label model N x B x H x W, the classes present, packed."""
        if not self.model.multilabel:
            return logits.max(dim=1).indices, None
        present = logits > self.model.threshold_logit
        return multilabel_display(logits, present)[:, 0], pack_label_sets(present)

    def scores(self, aggregation: Aggregation | None = None) -> np.ndarray:
        """Aggregated score of every class for the unperturbed image (no forward pass)."""
        agg = aggregation or Aggregation(ARGMAX_MASKED)
        self.predict()
        cacheable = agg.kind in (ARGMAX_MASKED, PLAIN_SUM)
        if cacheable and agg.kind in self._scores:
            return np.array(self._scores[agg.kind])
        assert self._logits_t is not None
        with torch.inference_mode():
            result: np.ndarray = self.aggregate(self._logits_t, agg).float().cpu().numpy()[0]
        if cacheable:
            self._scores[agg.kind] = result.copy()
        return result

    # -- Grad-CAM and activation -------------------------------------------------------
    @contextmanager
    def graph_from_layer(self, layer_path: str) -> Iterator[list[torch.Tensor]]:
        """Forward hooks that make ``layer``'s output the start of the autograd graph.

        Each call's output is detached into a leaf that gradients are taken against, and
        the model continues with a copy of it, as Captum's hooks do: an in-place operation
        after the layer (``out += identity`` after a ResNet's bn3) changes the copy, not
        the activation. A module called several times per pass (a shared ReLU) yields one
        leaf per call; the last one is used, as in Captum.
        """
        layer = get_layer(self.model.module, layer_path)
        captured: list[torch.Tensor] = []

        def hook(_module: torch.nn.Module, _inputs: object, output: object) -> torch.Tensor:
            reason = unusable_output_reason(layer_path, output)
            if reason or not isinstance(output, torch.Tensor):
                raise UserError(f"{reason}.")
            leaf = output.detach().requires_grad_(True)
            captured.append(leaf)
            copy: torch.Tensor = leaf.clone()
            return copy

        handle = layer.register_forward_hook(hook)
        try:
            yield captured
        finally:
            handle.remove()

    def gradcam(
        self,
        targets: list[int] | None = None,
        *,
        layer: str | None = None,
        aggregation: Aggregation | None = None,
        upsample: str = "nearest",
        state: JobState | None = None,
    ) -> GradCamResult:
        """Layer Grad-CAM for every target from one forward pass (and the activation)."""
        return gradcam_together([self], [targets], layer=layer, aggregation=aggregation,
                                upsample=upsample, state=state)[0]

    @staticmethod
    def _cam(grad: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
        # Captum's LayerGradCam: channel weights = gradient averaged over space,
        # then the weighted sum of the activation over channels (no ReLU by default).
        with torch.no_grad():
            if grad.dim() > 2:
                weights = torch.mean(grad, dim=tuple(range(2, grad.dim())), keepdim=True)
            else:
                weights = grad
            # .float() is a no-op in fp32; in bf16 it keeps the map in fp32 for numpy
            return torch.sum(weights.float() * activation.detach().float(), dim=1, keepdim=True)

    def activation(self, layer: str | None = None) -> torch.Tensor:
        """The layer's output for the image (Captum's LayerActivation), on the CPU."""
        return self.layer_output(layer or self.model.default_layer).cpu()

    def layer_output(self, layer: str, image: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's output at its last call (as Captum's LayerActivation and
        _forward_layer_eval) for ``image`` (default: the session's input), on its device."""
        path = normalize_layer_path(layer)
        layer_module = self.model.layer(path)
        captured: list[torch.Tensor] = []

        def hook(_module: torch.nn.Module, _inputs: object, output: object) -> None:
            reason = unusable_output_reason(path, output)
            if reason or not isinstance(output, torch.Tensor):
                raise UserError(f"{reason}.")
            captured.append(output.detach().clone())  # clone: later in-place ops change it

        handle = layer_module.register_forward_hook(hook)
        batch = self.input if image is None else image
        try:
            with self.guard_memory(), torch.inference_mode(), self.numerics():
                self.model.logits(self.layout(batch))
            self.count_forward(int(batch.shape[0]))
        finally:
            handle.remove()
        if not captured:
            raise UserError(f"Layer '{path}' is not used by the model's forward pass: choose "
                            "another layer.")
        return captured[-1]

    # -- feature ablation -----------------------------------------------------------
    def ablated_input(self, segments: Segments, segment_ids: Iterable[int], *,
                      baseline: Baseline | str = "zero") -> torch.Tensor:
        mask = self._mask_for(segments, segment_ids)
        base = self._baseline(parse_baseline(baseline))
        return self._ablate(self.input, mask, base)

    def _baseline(self, baseline: Baseline) -> float | torch.Tensor:
        """The baseline in the model's normalised space."""
        norm = self.image.normalization
        return baseline_tensor(baseline, self.input, norm.mean, norm.std)

    def _input_display(self) -> np.ndarray:
        """The model's input de-normalised for display (computed once)."""
        if self._display is None:
            self._display = denormalize(self.input, self.image.normalization)
        return self._display

    def _baseline_display(self, baseline: Baseline) -> np.ndarray:
        """What an ablated pixel looks like to the model, per baseline (computed once each).

        Displaying ``where(mask, this, input display)`` equals de-normalising the
        ablated input itself, without building it (tests check the equality).
        """
        if baseline.label not in self._baseline_displays:
            full = torch.zeros_like(self.input) + self._baseline(baseline)
            self._baseline_displays[baseline.label] = denormalize(full, self.image.normalization)
        return self._baseline_displays[baseline.label]

    def _segment_ids_on_device(self, segments: Segments) -> torch.Tensor:
        """``segments.ids`` on the model's device (the last segmentation's copy is kept:
        clicks on one segmentation reuse it)."""
        cached = self._segment_ids_t
        if cached is None or cached[0] is not segments:
            cached = (segments, torch.as_tensor(segments.ids, device=self.model.device))
            self._segment_ids_t = cached
        return cached[1]

    def _mask_for(self, segments: Segments, segment_ids: Iterable[int]) -> torch.Tensor:
        ids = self._segment_ids_on_device(segments)
        wanted = torch.as_tensor(sorted(set(int(s) for s in segment_ids)),
                                 device=self.model.device)
        return torch.isin(ids, wanted).to(self.input.dtype).view(1, 1, *ids.shape)

    @staticmethod
    def _ablate(inp: torch.Tensor, mask: torch.Tensor, base: float | torch.Tensor
                ) -> torch.Tensor:
        # Captum's construction: input * (1 - mask) + baseline * mask
        out: torch.Tensor = inp * (1 - mask) + base * mask
        return out

    def sweep(
        self,
        segments: Segments,
        *,
        baseline: Baseline | str = "zero",
        aggregation: Aggregation | None = None,
        state: JobState | None = None,
        chunk_size: int | None = None,
        keep_maps: bool = True,
    ) -> AblationSweep:
        """Ablate each segment once; record every class's aggregated score each time.

        Segments go through the model in chunks under the memory budget
        (:meth:`run_in_chunks`); ``chunk_size`` forces a size. Results stay on the device
        until the last chunk (one copy back).
        """
        agg = aggregation or Aggregation(ARGMAX_MASKED)
        base_spec = parse_baseline(baseline)
        start = time.perf_counter()
        initial = self.scores(agg).astype(np.float32)
        base = self._baseline(base_spec)
        ids = segments.id_list
        n = len(ids)
        h, w = segments.ids.shape
        seg_ids_t = self._segment_ids_on_device(segments).view(1, 1, h, w)

        def batch(first: int, count: int) -> torch.Tensor:
            id_t = torch.as_tensor(ids[first:first + count],
                                   device=self.model.device).view(-1, 1, 1, 1)
            masks = (seg_ids_t == id_t).to(self.input.dtype)  # k x 1 x H x W
            return self._ablate(self.input, masks, base)

        result = self.evaluate(
            n, batch, aggregation=agg, keep_maps=keep_maps, state=state,
            chunk_size=chunk_size, what="segment",
            describe=lambda done, total: describe_progress("Ablation sweep", done, total,
                                                           "one per segment"))
        return AblationSweep(
            segments=segments,
            baseline=base_spec.label,
            aggregation=agg.kind,
            initial_scores=initial,
            ablated_scores=result.scores,
            after_maps=result.maps,
            after_label_sets=result.label_sets,
            forward_passes=result.images,
            chunk_size=max(result.batches, default=0),
            seconds=time.perf_counter() - start,
            batches=result.batches,
            _rows=segments.rows_map(),
        )

    def evaluate(
        self,
        count: int,
        make_batch: Callable[[int, int], torch.Tensor],
        *,
        aggregation: Aggregation | None = None,
        keep_maps: bool = False,
        state: JobState | None = None,
        chunk_size: int | None = None,
        what: str = "image",
        describe: Callable[[int, int], str] | None = None,
    ) -> Evaluation:
        """Every class's score for ``count`` perturbed images, ``make_batch(first, k)``
        making images ``first .. first + k - 1`` (called under inference mode).

        This is the one loop every perturbation method runs (the ablation sweep, Shapley
        coalitions, occlusion windows, the evaluation's perturbed images): the images go
        through the model in chunks under the memory budget (:meth:`run_in_chunks`: one
        image at a time on a CPU, up to 32 on CUDA, fewer when the budget says so; an
        out-of-memory error halves the chunk). Scores stay on the device until the last
        chunk (one copy back).
        """
        agg = aggregation or Aggregation(ARGMAX_MASKED)
        describe = describe or (lambda done, total: f"Evaluated {done} of {total} images")
        n = count
        h, w = self.image.shape
        wide = self.model.num_classes + self.model.multilabel > 256  # multilabel: "no class"
        map_dtype = np.int32 if wide else np.uint8
        score_parts: list[torch.Tensor] = []
        map_parts: list[torch.Tensor] = []
        set_parts: list[torch.Tensor] = []  # multilabel: the classes present, packed

        def run(first: int, k: int) -> None:
            with torch.inference_mode(), self.numerics():
                batch = make_batch(first, k)
                logits = self.model.logits(self.layout(batch)).float()
                scores = self.aggregate(logits, agg).float()
                indices = sets = None
                if keep_maps:
                    indices, sets = self._maps_after(logits)
                    indices = indices.to(torch.int32 if wide else torch.uint8)
                del logits, batch
            score_parts.append(scores)  # kept only once the whole chunk went through
            if indices is not None:
                map_parts.append(indices)
            if sets is not None:
                set_parts.append(sets)

        report(state, 0, n, describe(0, n))
        batches = self.run_in_chunks(
            n, run, kind=INFERENCE, what=what, state=state, chunk_size=chunk_size,
            done=lambda done, total: report(state, done, total, describe(done, total)))
        if n:
            scores = torch.cat(score_parts).cpu().numpy()
            maps = (torch.cat(map_parts).cpu().numpy().astype(map_dtype, copy=False)
                    if keep_maps else None)
        else:
            scores = np.zeros((0, self.model.num_classes), dtype=np.float32)
            maps = np.zeros((0, h, w), dtype=map_dtype) if keep_maps else None
        labels = torch.cat(set_parts).cpu().numpy() if set_parts else None
        return Evaluation(scores=scores, maps=maps, images=sum(batches), calls=len(batches),
                          batches=batches, label_sets=labels)

    def ablate(
        self,
        segments: Segments,
        segment_ids: Iterable[int],
        *,
        baseline: Baseline | str = "zero",
        sweep: AblationSweep | None = None,
        state: JobState | None = None,
    ) -> AblationOutcome:
        """Ablate several segments at once (from the sweep's cache where it has the answer).

        Scores use the argmax-masked wrapper with the original prediction's mask, as
        Captum's FeatureAblation uses it.
        """
        chosen = tuple(sorted(set(int(s) for s in segment_ids)))
        if not chosen:
            raise UserError("Choose at least one segment to ablate.")
        known = set(segments.id_list)
        unknown = [s for s in chosen if s not in known]
        if unknown:
            raise UserError(f"Segment {unknown[0]} does not exist in this image.")
        base_spec = parse_baseline(baseline)
        agg = Aggregation(ARGMAX_MASKED)
        before = self.scores(agg).astype(np.float32)
        pred = self.predict()
        multilabel = self.model.multilabel
        cached = (
            sweep is not None and len(chosen) == 1 and sweep.after_maps is not None
            and (not multilabel or sweep.after_label_sets is not None)
            and sweep.baseline == base_spec.label and sweep.aggregation == ARGMAX_MASKED
            and (sweep.segments is segments or (
                sweep.segments.kind == segments.kind
                and np.array_equal(sweep.segments.ids, segments.ids)))
        )
        if cached and sweep is not None and sweep.after_maps is not None:
            row = segments.row_of()[chosen[0]]
            after = sweep.ablated_scores[row].copy()
            class_map_after = sweep.after_maps[row].astype(np.int64)
            masks_after = sweep.masks_after(row, self.model.num_classes)
        else:
            check_cancelled(state)
            report(state, 0, 1, "Ablating")
            inp = self.ablated_input(segments, chosen, baseline=base_spec)
            with self.guard_memory(), torch.inference_mode(), self.numerics():
                logits = self.model.logits(self.layout(inp)).float()
                after = self.aggregate(logits, agg).float().cpu().numpy()[0]
                indices, sets = self._maps_after(logits)
                indices = indices[0]
                if self.model.num_classes + multilabel <= 256:  # an 8x smaller copy back
                    indices = indices.to(torch.uint8)
                class_map_after = indices.cpu().numpy().astype(np.int64)
                masks_after = (None if sets is None else
                               unpack_label_sets(sets[0].cpu().numpy(), self.model.num_classes))
            self.count_forward(1)
            report(state, 1, 1, "Ablated")
        mask = np.repeat(segments.mask(chosen)[..., None], 3, axis=2)  # a full mask: 2x faster
        rgb = np.where(mask, self._baseline_display(base_spec), self._input_display())
        return AblationOutcome(
            segment_ids=chosen,
            baseline=base_spec.label,
            ablated_input=np.ascontiguousarray(rgb),
            before=before,
            after=after.astype(np.float32),
            class_map_after=class_map_after,
            # a pixel changed when its class did (multilabel: its set of classes)
            changed=(class_map_after != pred.class_map if masks_after is None or
                     pred.masks is None else np.any(masks_after != pred.masks, axis=0)),
            from_cache=bool(cached),
            masks_after=masks_after,
        )



# ----------------------------------------------------------------------------- shared passes
#: the most same-shape images of one shared pass in fp32 on CUDA: on an H200, batches of 2
#: and 4 gave every image bit-identical logits to its own pass, 8 differed by 6.4e-6
#: relative (issue 21), within the parity tolerance of 1e-5; larger batches were not
#: measured, so fp32 stops there. Fast mode (bf16) is not exact anyway: up to 32.
CUDA_FP32_TOGETHER = 8


def images_per_pass(model: LoadedModel, precision: str = "fp32",
                    asked: int | None = None) -> int:
    """The most same-shape images one shared pass (the prediction's, Grad-CAM's) takes,
    before the memory budget is consulted (``gradcam_together``, ``predict_together``).

    ``asked`` (``segexplorer batch --images-per-pass``) if given; on CUDA 8 in fp32
    (``CUDA_FP32_TOGETHER``) and 32 in fast mode; on a CPU one: there 4 images per pass
    were slower than one at a time (0.68x in fp32, 0.97x in bf16, docs/performance.md;
    the CPU's cores are busy with one image already), as for the sweep.
    """
    if asked is not None:
        if asked < 1:
            raise UserError(f"--images-per-pass {asked}: use at least 1.")
        return asked
    if model.device.type != "cuda":
        return 1
    return MAX_CUDA_CHUNK if precision == "bf16" else CUDA_FP32_TOGETHER


def _check_together(sessions: list[Session]) -> Session:
    lead = sessions[0]
    for other in sessions[1:]:
        if other.model is not lead.model or other.precision != lead.precision \
                or tuple(other.input.shape) != tuple(lead.input.shape):
            raise ValueError("images share a pass only with one model, one precision and "
                             "one shape")
    return lead


def _in_chunks(sessions: list[Session], kind: str, what: str, run: Callable[[int, int], None],
               state: JobState | None, most: int | None, memory: dict[str, int] | None
               ) -> None:
    """One image: its pass under ``guard_memory``, as always. Several: chunks of them under
    the memory budget (``Session.run_in_chunks`` of the first, sized by ``most`` and the
    memory one image of ``kind`` took in earlier chunks, kept in ``memory``)."""
    lead = sessions[0]
    if len(sessions) == 1:
        with lead.guard_memory(what):
            run(0, 1)
        return
    shared = f"shared:{kind}"  # apart from the lead's own passes of that kind
    if memory is not None and kind in memory:
        lead.memory.remember(shared, memory[kind])
    lead.run_in_chunks(len(sessions), run, kind=shared, what=what, state=state, most=most,
                       count_work=False)
    measured = lead.memory.image_memory(shared)
    if memory is not None and measured is not None:
        memory[kind] = measured


def _batched_input(chunk: list[Session]) -> torch.Tensor:
    return chunk[0].input if len(chunk) == 1 else torch.cat([s.input for s in chunk])


def _row(tensor: torch.Tensor, i: int, k: int) -> torch.Tensor:
    """Image i of a pass over k images (a copy, so that it does not hold the others)."""
    return tensor if k == 1 else tensor[i:i + 1].clone()


def predict_together(sessions: list[Session], *, state: JobState | None = None,
                     most: int | None = None, memory: dict[str, int] | None = None) -> None:
    """Every session's prediction (``Session.predict``) from passes over several of their
    images at once: same-shape images of one model, at most ``most`` per pass (see
    :func:`images_per_pass`) and as many as the memory budget holds. Each image's
    prediction equals its own pass's where the device's kernels do not depend on the batch
    (a CPU: bit for bit, tests/test_batch_together.py; CUDA in fp32 within the parity
    tolerance, see ``CUDA_FP32_TOGETHER``). Each session counts one image and one call."""
    todo = [s for s in sessions if s._prediction is None]
    if not todo:
        return
    _check_together(todo)

    def run(first: int, k: int) -> None:
        chunk = todo[first:first + k]
        lead = chunk[0]
        report(state, first, len(todo), "Predicting")
        with torch.inference_mode(), lead.numerics(), tracked([s.memory for s in chunk]):
            start = time.perf_counter()
            logits = lead.model.logits(lead.layout(_batched_input(chunk))).float()
            seconds = time.perf_counter() - start
        for i, session in enumerate(chunk):
            session.count_forward(1)
            session._set_prediction(_row(logits, i, k), seconds / k)

    _in_chunks(todo, INFERENCE, "image", run, state, most, memory)
    report(state, 1, 1, "Predicted")


def gradcam_together(
    sessions: list[Session],
    targets: list[list[int] | None],
    *,
    layer: str | None = None,
    aggregation: Aggregation | None = None,
    upsample: str = "nearest",
    state: JobState | None = None,
    most: int | None = None,
    memory: dict[str, int] | None = None,
) -> list[GradCamResult]:
    """Layer Grad-CAM for every target of every session (``targets[i]``: session i's, None
    for its predicted classes), from one forward pass per chunk of images (and the
    activation); the prediction too where a session has none yet.

    One image is ``Session.gradcam``. Several same-shape images of one model go through
    the model together, at most ``most`` at a time and as many as the memory budget holds
    (:func:`predict_together`'s rules). The j-th backward pass takes every image's j-th
    target at once: the sum of their scores, whose gradient on image i's activation is
    image i's own score's (the other images' rows add exact zeros: nothing in a model in
    eval mode mixes the images of a batch).
    """
    if upsample not in UPSAMPLE_MODES:
        raise UserError(f"Unknown upsampling '{upsample}': use nearest or bilinear.")
    lead = _check_together(sessions)
    layer_path = normalize_layer_path(layer or lead.model.default_layer)
    agg = aggregation or Aggregation(ARGMAX_MASKED)
    results: list[GradCamResult | None] = [None] * len(sessions)

    def run(first: int, k: int) -> None:
        chunk = sessions[first:first + k]
        done = _gradcam_pass(chunk, targets[first:first + k], layer_path, agg, upsample, state)
        results[first:first + k] = done

    from .budget import gradient_kind

    _in_chunks(sessions, gradient_kind(f"gradcam:{layer_path}"), "image", run, state, most,
               memory)
    return [r for r in results if r is not None]


def _gradcam_pass(chunk: list[Session], targets: list[list[int] | None], layer_path: str,
                  agg: Aggregation, upsample: str, state: JobState | None
                  ) -> list[GradCamResult]:
    lead, k = chunk[0], len(chunk)
    start = time.perf_counter()
    report(state, 0, 1, "Grad-CAM: forward pass")
    raw: list[dict[int, np.ndarray]] = [{} for _ in chunk]
    upsampled: list[dict[int, np.ndarray]] = [{} for _ in chunk]
    with lead.graph_from_layer(layer_path) as captured, torch.enable_grad(), \
            lead.numerics():
        with tracked([s.memory for s in chunk]):
            pass_start = time.perf_counter()  # the pass alone, not its measurement
            logits = lead.model.logits(lead.layout(_batched_input(chunk))).float()
            pass_seconds = time.perf_counter() - pass_start
        if not captured:
            raise UserError(f"Layer '{layer_path}' is not used by the model's forward "
                            "pass: choose another layer.")
        activation = captured[-1]  # the last call, as Captum's hooks keep it
        scores = []
        wanted: list[list[int]] = []
        for i, session in enumerate(chunk):
            session.count_forward(1)
            row = logits if k == 1 else logits[i:i + 1]
            if session._prediction is None:
                session._set_prediction(_row(logits, i, k).detach(), pass_seconds / k)
            scores.append(session.aggregate(row, agg))
            own = targets[i]
            wanted.append(list(own) if own is not None
                          else list(session.predict().present_classes))
        size = tuple(lead.input.shape[2:])
        passes = max((len(w) for w in wanted), default=0)
        for j in range(passes):
            check_cancelled(state)
            first = next(i for i, w in enumerate(wanted) if j < len(w))
            report(state, j, passes, f"Grad-CAM: class {wanted[first][j]}")
            takers = [i for i, w in enumerate(wanted) if j < len(w)]
            parts = [scores[i][0, wanted[i][j]] for i in takers]
            total = parts[0] if len(parts) == 1 else torch.stack(parts).sum()
            # one backward per target: batching them (autograd's is_grads_batched) gave
            # the same numbers, no speed on a CPU or an H200, and twice the GPU memory
            (grad,) = torch.autograd.grad(total, activation, retain_graph=j < passes - 1,
                                          allow_unused=True)
            if grad is None:
                raise UserError(UNUSED_REASON.format(path=layer_path) + ".")
            for i in takers:
                cls = wanted[i][j]
                chunk[i].count_backward(1)
                cam = Session._cam(grad if k == 1 else grad[i:i + 1],
                                   activation if k == 1 else activation[i:i + 1])
                raw[i][cls] = cam[0, 0].cpu().numpy()
                upsampled[i][cls] = F.interpolate(cam, size, mode=upsample)[0, 0].cpu().numpy()
    results = []
    with torch.no_grad():
        for i in range(k):
            act = activation.detach() if k == 1 else activation.detach()[i:i + 1]
            mean = act.float().mean(dim=1, keepdim=True) if act.dim() == 4 else None
            act_up = (F.interpolate(mean, size, mode="bilinear", align_corners=False)
                      if mean is not None else None)
            results.append(GradCamResult(
                layer=layer_path,
                aggregation=agg.kind,
                upsample=upsample,
                activation_shape=tuple(act.shape),
                raw=raw[i],
                upsampled=upsampled[i],
                activation_mean=mean[0, 0].cpu().numpy() if mean is not None
                else np.zeros((1, 1)),
                activation_upsampled=act_up[0, 0].cpu().numpy() if act_up is not None
                else np.zeros(size, np.float32),
                seconds=(time.perf_counter() - start) / k,
                backward_passes=len(wanted[i]),
            ))
    report(state, 1, 1, "Grad-CAM done")
    return results
