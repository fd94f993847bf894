"""Helpers shared by the benchmark scripts: machine description, timing, memory, inputs.

Benchmarks print ratios against a baseline measured in the same run; nothing here
asserts a timing.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch


def default_image() -> str:
    """skimage's motorcycle_left.png from the installed package (no download)."""
    import skimage

    path = Path(skimage.__file__).parent / "data" / "motorcycle_left.png"
    if not path.is_file():
        raise SystemExit(f"{path} is missing from the installed skimage: pass --image PATH.")
    return str(path)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_info(device: torch.device) -> dict:
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "gpu": None,
        "load_average": None,
    }
    with contextlib.suppress(OSError):
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_header(info: dict) -> str:
    lines = [
        f"CPU:     {info['cpu']} ({info['cores']} cores, {info['usable_cores']} usable; "
        f"torch threads {info['torch_threads']})",
        f"GPU:     {info['gpu'] or 'none used'}",
        f"torch:   {info['torch']}  python {info['python']}  device {info['device']}",
    ]
    if info.get("load_average"):
        la = info["load_average"]
        lines.append(f"load:    {la[0]} {la[1]} {la[2]} (1/5/15 min load average at start)")
    return "\n".join(lines)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Wall time of a block, waiting for the device before reading the clock."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        sync(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self._start


class ForwardCounter:
    """Counts calls of a module's forward (and the images they carry) with a forward
    pre-hook. A hook, not a replaced ``forward``: ``copy.deepcopy`` of the module (the
    evaluation's randomised models) copies the hook with it, still counting here, where a
    replaced ``forward`` would be copied as a function bound to the *original* module and
    the copies would silently run the original weights."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls = 0
        self.images = 0

        def counted(_module, args, kwargs):  # a plain closure: deepcopy shares it
            self.calls += 1
            first = args[0] if args else next(iter(kwargs.values()), None)
            if isinstance(first, torch.Tensor) and first.dim() > 0:
                self.images += int(first.shape[0])

        self.handle = module.register_forward_pre_hook(counted, with_kwargs=True)

    def reset(self) -> None:
        self.calls = 0
        self.images = 0


def same_arithmetic(device: torch.device) -> str:
    """Both sides of a comparison in strict fp32: TF32 off for cuDNN's convolutions and
    CUDA's matrix products, process-wide (the engine's fp32 mode switches it off around
    its own calls; a library's calls would otherwise run under PyTorch's default, TF32
    convolutions). Returns the line a benchmark prints."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    if device.type == "cuda":
        return ("arithmetic: strict fp32 on both sides (TF32 off for cuDNN convolutions and "
                "CUDA matmuls)")
    return "arithmetic: fp32 on both sides (TF32 is a GPU format: nothing to switch on a CPU)"


class Memory:
    """The peak memory of a block: VmHWM on the CPU (reset before it), the peak
    allocated over what was allocated before it on CUDA. The engine resets CUDA's peak
    counter when it measures one image (engine.budget): the peak before each reset is
    kept, so the block's peak is right."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak: float | None = None

    def __enter__(self) -> Memory:
        if self.device.type == "cuda":
            self._original = torch.cuda.reset_peak_memory_stats
            self._kept = 0

            def reset(dev=None):
                self._kept = max(self._kept, torch.cuda.max_memory_allocated(self.device))
                self._original(dev)

            torch.cuda.reset_peak_memory_stats = reset
            self._original(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            reset_peak_rss()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats = self._original
            peak = max(self._kept, torch.cuda.max_memory_allocated(self.device))
            self.peak = (peak - self._base) / 2**20
        else:
            self.peak = window_peak_rss_mib()


# ---------------------------------------------------------------------- memory (Linux)


def peak_rss_mib() -> float:
    """The process's peak resident set since it started (ru_maxrss; KiB on Linux)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if platform.system() == "Darwin":  # bytes there
        kib /= 1024
    return kib / 1024


def _status_kib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_mib() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (VmHWM) so a later read covers only what follows."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def window_peak_rss_mib() -> float | None:
    """VmHWM: the peak since the last :func:`reset_peak_rss` (or since start)."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib / 1024


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def write_results(path: str, benchmark: str, args: dict, info: dict, models: list) -> None:
    """The run's results as JSON (for docs/performance.md and later comparison)."""
    import json
    import time
    from pathlib import Path

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": benchmark,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "args": args,
        "machine": info,
        "models": models,
    }, indent=2))
    print(f"wrote {out}")


def click_arg_parser(description: str, default_models: tuple[str, ...],
                     default_device: str):
    """The options both click benchmarks take (engine-level and in the window)."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--image", default=None, help="image path (default: skimage's motorcycle_left.png)")
    p.add_argument("--models", default=",".join(default_models),
                   help="comma-separated (default: %(default)s)")
    p.add_argument("--weights", default="untrained", help="untrained, default or a file path")
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--device", default=default_device)
    p.add_argument("--segments", default="class", choices=("class", "component"))
    p.add_argument("--clicks", type=int, default=20, help="timed clicks of each kind")
    p.add_argument("--warmup", type=int, default=1, help="untimed clicks of each kind first")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", default=None, metavar="OUT")
    return p


def run_models(args, bench, report) -> list:
    """``bench(name)`` for each model of ``--models``, printing ``report(result)`` as it goes."""
    import sys

    results = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result = bench(name)
        results.append(result)
        print()
        print(report(result), flush=True)
    return results
