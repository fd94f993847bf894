"""The memory budget: how much memory the images of one model call may take, on every device.

Every batched path of the engine (the ablation sweep, Shapley coalitions, occlusion
windows, integrated-gradient steps with their backward passes, the evaluation's perturbed
images) sends its images through the model in chunks: as many images as the budget holds
at the memory one image takes, never more than the device's own batch (32 on CUDA; on a
CPU one image, or about a megapixel of integration steps), at least one. The results do
not depend on the chunks (the CPU tests check it bit for bit, with budgets that force
three chunks and more).

Where the budget comes from, the first one set:

1. a setting passed in: ``--gpu-memory GIB`` on the command line, the window's setting
   (``Session(..., budget=resolve_budget(device, gib))``);
2. the environment variable ``SEGEXPLORER_GPU_MEMORY`` (GiB);
3. the default: on a CUDA GPU the smaller of 8 GiB and half the card (a GPU is often
   shared: the rest is left to others); on the CPU (and Apple's MPS, whose memory is the
   machine's) half the memory the machine has available when the session starts
   (``MemAvailable`` in /proc/meminfo on Linux, the free physical pages elsewhere).

The budget bounds the memory of one chunk's images (activations, graphs, outputs), above
what the model's weights and the session's own tensors hold. What one image takes is
measured, not assumed, by the first chunk of each kind of pass:

* on CUDA, the peak of ``torch.cuda.max_memory_allocated`` over that chunk;
* on Linux, the growth of the process's peak resident memory (``VmHWM``, reset through
  ``/proc/self/clear_refs``) over that chunk, after freed memory is handed back to the
  system (``malloc_trim``): what the operating system counts when it runs out of memory,
  allocator and all (:class:`PeakResident`);
* elsewhere, a model from that chunk's tensors (every layer's output, see
  ``Session``): an estimate, larger than what a CPU's allocator really holds.

Before any batched run, an estimate can already state memory: on CUDA the prediction's
pass is measured; elsewhere the same model of the layers' outputs is taken from it (for
estimates only: chunks are sized from measurements).

The first chunk of a kind is sized from the figure modelled at the prediction (CUDA: a
gradient image as ``GRADIENT_FACTOR`` measured inference images; elsewhere the layers'
outputs, an over-estimate; one image when nothing is known) and measures what it takes
per image. A chunk's fixed part (workspace, the aggregation's buffers) counts in that
figure, so it is an upper bound per image and the chunks err on the small side.
When one image alone needs more than the budget, the work goes one image at a time and
the estimate says so. An out-of-memory error that still happens halves the chunk; at one
image it is a one-line error, never a crash.

This module imports no torch at load time (the CLI checks ``--gpu-memory`` before torch
has loaded); torch is imported only to read a CUDA card's size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from .errors import UserError

GIB = 1 << 30
MIB = 1 << 20
#: the environment variable that sets the budget, in GiB
ENV_VAR = "SEGEXPLORER_GPU_MEMORY"
#: CUDA's default: at most this much ...
GPU_DEFAULT_MOST = 8 * GIB
#: ... and at most this share of the card
GPU_DEFAULT_SHARE = 0.5
#: a CPU's (and MPS's) default: this share of the memory available
CPU_DEFAULT_SHARE = 0.5
#: the default when the machine's free memory cannot be read
UNKNOWN_DEFAULT = 4 * GIB
#: a budget above this many GiB is a typo
MOST_GIB = 1 << 20

#: the kind of pass every perturbation method and the evaluation run (no gradient)
INFERENCE = "inference"
#: a gradient pass of one image, until measured, is modelled as this many inference passes
#: (fcn_resnet101 on a CPU at 240 x 320 px: 694 MiB for a one-image integrated-gradients
#: chunk, 108 MiB for a one-image inference chunk, docs/performance.md)
GRADIENT_FACTOR = 8


def gradient_kind(name: str) -> str:
    """The kind of a gradient pass (``'ig'``, ``'layer_ig:backbone.layer4'``): each has its
    own graph, so its own memory per image."""
    return f"gradient:{name}"


def format_bytes(n: float) -> str:
    """'1.5 GiB', '340 MiB', '12 KiB'."""
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    if n >= MIB:
        return f"{n / MIB:.0f} MiB"
    return f"{max(n, 0) / 1024:.0f} KiB"


def parse_gib(value: str | float, source: str = "--gpu-memory") -> float:
    """A positive number of GiB, or a one-line UserError naming ``source``."""
    try:
        gib = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{source} '{value}' is not a number of GiB: use e.g. 4 or 0.5."
                        ) from None
    if not math.isfinite(gib) or gib <= 0:
        raise UserError(f"{source} {value}: use a positive number of GiB (e.g. 4 or 0.5).")
    if gib > MOST_GIB:
        raise UserError(f"{source} {value}: that is more memory than any machine has; give "
                        "the budget in GiB (e.g. 8).")
    return gib


@dataclass(frozen=True)
class MemoryBudget:
    """How much memory the images of one model call may take on a device."""

    limit: int  # bytes
    device: str  # 'cpu', 'cuda:0', 'mps'
    source: str  # where the figure comes from, e.g. '--gpu-memory', 'default: ...'
    max_batch: int | None = None  # most images per model call (None: the device's own)

    @classmethod
    def of(cls, gib: float, device: str = "cpu", source: str = "the setting",
           max_batch: int | None = None) -> MemoryBudget:
        return cls(max(1, int(gib * GIB)), device, source, max_batch)

    @property
    def gib(self) -> float:
        return self.limit / GIB

    def images(self, per_image: int, preferred: int) -> int:
        """Images per model call: as many as the budget holds at ``per_image`` bytes each,
        at least one, at most ``preferred`` (the device's batch) or ``max_batch``."""
        most = self.max_batch if self.max_batch is not None else preferred
        return max(1, min(most, self.limit // max(per_image, 1)))

    def describe(self) -> str:
        """'8.0 GiB (default: half of the card's 16.0 GiB, at most 8 GiB)'."""
        return f"{format_bytes(self.limit)} ({self.source})"

    def as_json(self) -> dict[str, object]:
        return {"bytes": self.limit, "gib": round(self.gib, 3), "device": self.device,
                "source": self.source, "max_batch": self.max_batch}


def check_setting(gib: float | None, environ: Mapping[str, str] | None = None) -> None:
    """Refuse, before any work, a bad ``--gpu-memory`` or ``SEGEXPLORER_GPU_MEMORY``."""
    if gib is not None:
        parse_gib(gib)
    env = (os.environ if environ is None else environ).get(ENV_VAR)
    if env is not None and env.strip():
        parse_gib(env.strip(), ENV_VAR)


def resolve_budget(device: object, gib: float | None = None, *,
                   source: str = "--gpu-memory",
                   environ: Mapping[str, str] | None = None) -> MemoryBudget:
    """The budget for ``device`` (a ``torch.device`` or its name): ``gib`` if given (from
    ``source``: the option or setting that gave it), else ``SEGEXPLORER_GPU_MEMORY``,
    else the device's default (see the module's docstring)."""
    name = str(device)
    if gib is not None:
        return MemoryBudget.of(parse_gib(gib, source), name, source)
    env = (os.environ if environ is None else environ).get(ENV_VAR)
    if env is not None and env.strip():
        return MemoryBudget.of(parse_gib(env.strip(), ENV_VAR), name, ENV_VAR)
    if name.startswith("cuda"):
        total = _cuda_total(name)
        limit = min(GPU_DEFAULT_MOST, int(total * GPU_DEFAULT_SHARE))
        return MemoryBudget(limit, name, f"default: half of the card's {format_bytes(total)}, "
                                         f"at most {format_bytes(GPU_DEFAULT_MOST)}")
    found = available_memory()
    if found is None:
        return MemoryBudget(UNKNOWN_DEFAULT, name, f"default: {format_bytes(UNKNOWN_DEFAULT)}"
                                                   ", the free memory could not be read")
    available, how = found
    return MemoryBudget(max(1, int(available * CPU_DEFAULT_SHARE)), name,
                        f"default: half of the {format_bytes(available)} {how}")


def _cuda_total(name: str) -> int:
    import torch

    index = int(name.split(":")[1]) if ":" in name else torch.cuda.current_device()
    return int(torch.cuda.get_device_properties(index).total_memory)


def available_memory() -> tuple[int, str] | None:
    """(bytes, how it was read): the memory this machine can give without swapping, or
    None when it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "available (MemAvailable)"
    except (OSError, ValueError, IndexError):
        pass
    if sys.platform == "win32":
        return _windows_available()
    try:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and size > 0:
            return pages * size, "free (free physical pages)"
    except (ValueError, OSError, AttributeError):
        pass
    try:  # macOS has no free-page count here: half the physical memory stands for it
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and size > 0:
            return pages * size // 2, "taken as available (half the physical memory)"
    except (ValueError, OSError, AttributeError):
        pass
    return None


def _windows_available() -> tuple[int, str] | None:  # pragma: no cover - Windows only
    if sys.platform != "win32":
        return None

    class MemoryStatus(ctypes.Structure):
        _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                    ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                    ("ullTotalPageFile", ctypes.c_ulonglong),
                    ("ullAvailPageFile", ctypes.c_ulonglong),
                    ("ullTotalVirtual", ctypes.c_ulonglong),
                    ("ullAvailVirtual", ctypes.c_ulonglong),
                    ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

    status = MemoryStatus()
    status.dwLength = ctypes.sizeof(MemoryStatus)
    kernel32 = ctypes.windll.kernel32
    if not kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
        return None
    return int(status.ullAvailPhys), "available (GlobalMemoryStatusEx)"


# ----------------------------------------------------------------------------- measuring
def _status_bytes(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _libc_trim() -> None:
    """Hand the C allocator's free memory back to the system (glibc's malloc_trim), so
    that what a block allocates afterwards shows in the resident memory."""
    trim = _LIBC_TRIM[0]
    if trim is not None:
        trim(0)


def _find_trim() -> Callable[[int], int] | None:
    try:
        name = ctypes.util.find_library("c")
        found = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:  # pragma: no cover - no C library to load
        return None
    return cast("Callable[[int], int] | None", found)


_LIBC_TRIM: list[Callable[[int], int] | None] = [None]
_RSS_SUPPORTED: list[bool | None] = [None]


class PeakResident:
    """The growth of this process's peak resident memory over a block (Linux): the
    high-water mark is reset at the start, after freed memory is returned to the system,
    and read at the end. Other threads' allocations count too (an upper bound)."""

    def __init__(self) -> None:
        self.growth = 0
        self._base = 0

    @staticmethod
    def supported() -> bool:
        if _RSS_SUPPORTED[0] is None:
            ok = sys.platform.startswith("linux") and _status_bytes("VmHWM") is not None
            if ok:
                try:
                    Path("/proc/self/clear_refs").write_text("5")
                except OSError:
                    ok = False
            if ok:
                _LIBC_TRIM[0] = _find_trim()
            _RSS_SUPPORTED[0] = ok
        return bool(_RSS_SUPPORTED[0])

    def __enter__(self) -> PeakResident:
        _libc_trim()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        self._base = _status_bytes("VmRSS") or 0
        return self

    def __exit__(self, *exc: object) -> None:
        peak = _status_bytes("VmHWM") or 0
        self.growth = max(0, peak - self._base)


# ----------------------------------------------------------------------------- estimates
@dataclass(frozen=True)
class MemoryFacts:
    """What a run's memory depends on, known before it runs (``Session.memory.memory_facts``)."""

    budget: MemoryBudget
    inference: int | None  # bytes one image takes through the model (None: not known)
    gradient: int | None  # bytes one image takes through the model and back
    inference_batch: int  # the device's most images per call, without gradients
    gradient_batch: int  # ... with them (integration steps)
    inference_measured: bool = True  # else modelled from the prediction's layer outputs
    gradient_measured: bool = True

    def gradient_or_model(self) -> tuple[int | None, bool]:
        """(bytes per gradient image, measured?): when no gradient figure is known, modelled
        as ``GRADIENT_FACTOR`` inference images."""
        if self.gradient is not None:
            return self.gradient, self.gradient_measured
        if self.inference is not None:
            return self.inference * GRADIENT_FACTOR, False
        return None, False

    def use(self, images: int, *, gradient: bool) -> MemoryUse | None:
        """The memory of ``images`` images sent in chunks under the budget."""
        if gradient:
            per, measured = self.gradient_or_model()
            batch = self.gradient_batch
        else:
            per, measured, batch = self.inference, self.inference_measured, \
                self.inference_batch
        if per is None or images <= 0:
            return None
        at_once = min(images, self.budget.images(per, batch))
        return MemoryUse(per, at_once, self.budget.limit, measured)


@dataclass(frozen=True)
class MemoryUse:
    """The memory a run will take: its largest chunk's images."""

    per_image: int  # bytes
    at_once: int  # images in the largest chunk
    budget: int  # bytes
    measured: bool  # per_image measured on this device (else modelled)

    @property
    def bytes(self) -> int:
        return self.per_image * self.at_once

    @property
    def over_budget(self) -> bool:
        """One image alone needs more than the budget (it runs anyway, one at a time)."""
        return self.per_image > self.budget

    def describe(self) -> str:
        """'about 1.2 GiB (4 images at a time within the 8.0 GiB budget)'."""
        about = "about" if self.measured else "roughly"
        if self.over_budget:
            return (f"{about} {format_bytes(self.bytes)}: one image needs more than the "
                    f"{format_bytes(self.budget)} budget, so one at a time")
        images = f"{self.at_once} image{'s' if self.at_once != 1 else ''}"
        return (f"{about} {format_bytes(self.bytes)} ({images} at a time within the "
                f"{format_bytes(self.budget)} budget)")


def largest(uses: list[MemoryUse | None]) -> MemoryUse | None:
    """The use that takes most memory (None when none is known)."""
    known = [u for u in uses if u is not None]
    return max(known, key=lambda u: u.bytes) if known else None
