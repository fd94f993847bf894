"""How much memory one image of a session takes, and so how many images one call may take.

A :class:`~.session.Session` holds one :class:`SessionMemory` (``session.memory``):
the memory one image takes per kind of pass (``budget.INFERENCE``, a
``budget.gradient_kind``), measured by the first chunk of a batched run
(:meth:`SessionMemory.measuring`) or modelled at the prediction from the layers' outputs
(:meth:`SessionMemory.track`, for estimates before any run); the device's preferred
batch; and the images per call the memory budget (``engine.budget``) allows from them.
``Session.run_in_chunks`` runs the chunks; this module only sizes them.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .budget import (
    GRADIENT_FACTOR,
    INFERENCE,
    MemoryBudget,
    MemoryFacts,
    PeakResident,
    gradient_kind,
)
from .errors import UserError
from .models import LoadedModel

#: the key of the modelled memory of any gradient pass (SessionMemory._modelled)
GRADIENT = "gradient"
#: the most images of one CUDA call without gradients (the budget may allow fewer)
MAX_CUDA_CHUNK = 32
#: the most integration steps of one call with gradients, on any device
MAX_STEPS_CHUNK = 64
#: a CPU's integration steps per call: about a megapixel (one 640 x 860 image). Without
#: gradients a CPU takes one image per call: progress and Cancel answer after each image,
#: at no loss of speed (docs/performance.md).
CPU_CHUNK_PIXELS = 1 << 20


class _LayerOutputs:
    """Every leaf module's output over a pass: the memory model where memory cannot be
    measured (not Linux, MPS). An over-estimate: outputs freed during the pass count."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.total = 0
        self.largest = 0
        self._handles = [m.register_forward_hook(self._hook) for m in module.modules()
                         if not any(True for _ in m.children())]

    def _hook(self, _module: torch.nn.Module, _inputs: object, output: object) -> None:
        for t in (output if isinstance(output, (tuple, list)) else (output,)):
            if isinstance(t, torch.Tensor):
                size = t.numel() * t.element_size()
                self.total += size
                self.largest = max(self.largest, size)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def estimate(self, gradient: bool) -> int:
        # without gradients a layer's input, its output and a residual branch are alive
        # at once; with them every output is kept for the backward, which holds two more.
        # (fcn_resnet101 at 240 x 320 px on a CPU, with the logits' copies added by the
        # caller: 808 MiB modelled against 694 MiB of resident memory measured for a
        # gradient image, 54 against about 60 MiB per inference image)
        return self.total + 2 * self.largest if gradient else 3 * self.largest



class SessionMemory:
    """The memory side of one session: what one image takes per kind of pass, and the
    images per call that the budget and the device allow.

    ``model`` and ``shape`` are the session's (the image's height and width); ``budget``
    what the images of one model call may take (``engine.budget``; the session's
    ``budget`` is this one). The measurements and models are shared with the sessions
    a session derives (:meth:`share_measurements`: the same shapes, the same memory);
    the timings are each session's own.
    """

    def __init__(self, model: LoadedModel, shape: tuple[int, int],
                 budget: MemoryBudget) -> None:
        self.model = model
        self.shape = shape
        self.budget = budget
        # bytes one image takes per kind of pass (budget.INFERENCE, gradient kinds),
        # measured by a chunk's first image; shared with derived sessions (same shapes)
        self._image_bytes: dict[str, int] = {}
        self._image_seconds: list[float] = []  # seconds per image of inference chunks
        # modelled from the prediction's layer outputs (off CUDA): for estimates only
        self._modelled: dict[str, int] = {}

    def share_measurements(self, other: SessionMemory) -> None:
        """Use ``other``'s measurements and models from now on (one dictionary each:
        what either measures serves both), for a session on the same shapes."""
        self._image_bytes = other._image_bytes
        self._modelled = other._modelled

    @property
    def image_bytes(self) -> int | None:
        """Memory one image takes through the model without gradients (measured by the
        first chunk, or on CUDA by the prediction's pass; None before): the chunks of
        every perturbation method are sized from it."""
        return self._image_bytes.get(INFERENCE)

    def image_memory(self, kind: str = INFERENCE) -> int | None:
        """Memory one image takes in ``kind`` of pass (``budget.INFERENCE`` or a
        ``budget.gradient_kind``), as measured; None before it was."""
        return self._image_bytes.get(kind)

    def remember(self, kind: str, per_image: int) -> None:
        """Take ``per_image`` bytes as measured for ``kind`` (one measured in an earlier
        run: ``session._in_chunks`` keeps a shared pass's across sessions)."""
        self._image_bytes[kind] = per_image

    def forget_image_bytes(self) -> None:
        """Forget the measurements: the next chunked run probes with one image first."""
        self._image_bytes.clear()

    def record_seconds(self, seconds: float) -> None:
        """One image's seconds through the model in an inference chunk."""
        self._image_seconds.append(seconds)

    def seconds_per_image(self) -> float | None:
        """The median time of one image through the model in this session's chunks (None
        before any): a steadier figure for time estimates than the first pass, which pays
        for the model's warm-up."""
        return statistics.median(self._image_seconds) if self._image_seconds else None

    def preferred_batch(self, kind: str = INFERENCE) -> int:
        """The most images one call takes on this device before the budget is consulted:
        on CUDA 32 (64 integration steps); on a CPU or MPS one image without gradients,
        about a megapixel of integration steps with them. ``budget.max_batch`` overrides."""
        if self.model.device.type == "cuda":
            return MAX_CUDA_CHUNK if kind == INFERENCE else MAX_STEPS_CHUNK
        if kind == INFERENCE:
            return 1
        h, w = self.shape
        return max(1, min(MAX_STEPS_CHUNK, CPU_CHUNK_PIXELS // max(h * w, 1)))

    def chunk_for(self, kind: str = INFERENCE) -> int | None:
        """Images per call the budget allows for ``kind`` (None before its memory is
        measured: the next run starts with one image to measure it)."""
        per = self._image_bytes.get(kind)
        return None if per is None else self.budget.images(per, self.preferred_batch(kind))

    def images_within(self, per_image: int, kind: str, most: int | None) -> int:
        """Images per call at ``per_image`` bytes each: the budget's, at most the
        device's batch for ``kind`` (or ``most``, when given)."""
        if most is None:
            return self.budget.images(per_image, self.preferred_batch(kind))
        return max(1, min(most, self.budget.images(per_image, most)))

    def chunk_within(self, kind: str, most: int | None) -> int | None:
        """:meth:`images_within` at the measured memory of ``kind`` (None: not measured)."""
        per = self._image_bytes.get(kind)
        return None if per is None else self.images_within(per, kind, most)

    def memory_facts(self) -> MemoryFacts:
        """What a run's memory depends on, for estimates before it runs
        (``engine.methods.ImageFacts(memory=...)``)."""
        kind = gradient_kind("ig")
        inference = self._image_bytes.get(INFERENCE)
        gradient = self._image_bytes.get(kind)
        return MemoryFacts(
            self.budget, inference if inference is not None else self._modelled.get(INFERENCE),
            gradient if gradient is not None else self._modelled.get(GRADIENT),
            self.preferred_batch(INFERENCE), self.preferred_batch(kind),
            inference_measured=inference is not None, gradient_measured=gradient is not None)

    def modelled_bytes(self, kind: str) -> int | None:
        """What one image of ``kind`` is modelled to take before it is measured: from the
        prediction's layer outputs off CUDA; on CUDA, a gradient image as
        ``budget.GRADIENT_FACTOR`` measured inference images. None: not known (the first
        chunk then holds one image)."""
        if kind == INFERENCE:
            return self._modelled.get(INFERENCE, self._image_bytes.get(INFERENCE))
        if GRADIENT in self._modelled:
            return self._modelled[GRADIENT]
        inference = self._image_bytes.get(INFERENCE)
        return None if inference is None else inference * GRADIENT_FACTOR

    def least_image_bytes(self) -> int:
        """What one image cannot take less of: its input and its logits, in float32."""
        h, w = self.shape
        return (3 + self.model.num_classes) * h * w * 4

    @contextmanager
    def measuring(self, kind: str, images: int) -> Iterator[None]:
        """Record the memory ``images`` images of ``kind`` take over the block (per image,
        the largest seen): CUDA's peak allocated, Linux's peak resident memory, or
        elsewhere a model from the layers' outputs (``engine.budget``'s docstring)."""
        device = self.model.device
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            yield
            used = torch.cuda.max_memory_allocated(device) - before
        elif PeakResident.supported():
            with PeakResident() as rss:
                yield
            used = rss.growth
        else:
            outputs = _LayerOutputs(self.model.module)
            try:
                yield
            finally:
                outputs.remove()
            used = outputs.estimate(kind != INFERENCE) + 3 * self.least_image_bytes() * images
        per = max(used // max(images, 1), self.least_image_bytes())
        self._image_bytes[kind] = max(self._image_bytes.get(kind, 0), per)

    @contextmanager
    def track(self) -> Iterator[None]:
        """Around the prediction's pass, what one image takes, so that an estimate can
        state memory before any batched run: on CUDA measured (the peak allocated: the
        sweep then sizes its chunks without a probe); elsewhere modelled from the layers'
        outputs (``_LayerOutputs``), for estimates only. Measuring a CPU's resident
        memory would hand the allocator's free memory back first and slow the pass the
        window times its estimates by; the batched runs measure their own first image."""
        if self.model.device.type == "cuda":
            with self.measuring(INFERENCE, 1):
                yield
            return
        outputs = _LayerOutputs(self.model.module)
        try:
            yield
        finally:
            outputs.remove()
        self._model_from(outputs, 1)

    def _model_from(self, outputs: _LayerOutputs, images: int) -> None:
        """One image's modelled memory from the layers' outputs of a pass over ``images``
        same-shape images (every output is ``images`` times one image's)."""
        least = self.least_image_bytes()  # the input and the logits: copies outside layers
        self._modelled[INFERENCE] = outputs.estimate(False) // images + 3 * least
        self._modelled[GRADIENT] = outputs.estimate(True) // images + 3 * least

    def out_of_memory(self, what: str) -> UserError:
        """The one line for an out-of-memory error with one ``what`` at a time."""
        hint = ("use a smaller working size, a smaller --gpu-memory, or the CPU"
                if self.model.device.type == "cuda"
                else "use a smaller working size or close other programs")
        return UserError(f"Out of memory on {self.model.device} even with one {what} at a "
                         f"time (memory budget {self.budget.describe()}): {hint}.")

    def release(self) -> None:
        """Hand back what an out-of-memory error left allocated (CUDA's cache too)."""
        gc.collect()
        if self.model.device.type == "cuda":
            torch.cuda.empty_cache()


@contextmanager
def tracked(memories: list[SessionMemory]) -> Iterator[None]:
    """:meth:`SessionMemory.track` for a chunk of same-shape images of one model: one
    image as ever; several, off CUDA, each gets the layers' outputs of the pass over its
    share (every output is k times one image's, so the figure is one image's own); on
    CUDA, where a chunk's memory is measured by ``Session.run_in_chunks``, each image's
    sweep measures its own."""
    if len(memories) == 1:
        with memories[0].track():
            yield
        return
    if memories[0].model.device.type == "cuda":
        yield
        return
    outputs = _LayerOutputs(memories[0].model.module)
    try:
        yield
    finally:
        outputs.remove()
    for memory in memories:
        memory._model_from(outputs, len(memories))
