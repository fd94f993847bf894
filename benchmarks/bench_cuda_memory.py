"""CUDA memory of the engine's passes: where does a peak come from, and what bounds it?

For fcn_resnet101 (fp32) at --size 640: the peak allocated memory and time of Grad-CAM for
every predicted class and of the ablation sweep in chunks of 1, 2, 4 and all segments.
Each case runs twice: with cuDNN autotuning (--autotune) the first call searches
algorithms for its shapes (its peak includes the workspace offered to them), the second is
what a user pays from then on. Compare, e.g.

    python benchmarks/bench_cuda_memory.py              # the engine's setting: no autotuning
    python benchmarks/bench_cuda_memory.py --autotune
    CUDNN_CONV_WSCAP_DBG=4096 python benchmarks/bench_cuda_memory.py --autotune
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from bench_common import Timer, default_image, fmt_s, machine_header, machine_info


def measure(device, fn) -> tuple[float, float, float]:
    """(seconds, peak allocated MiB above the start, reserved MiB after)."""
    torch.cuda.synchronize(device)
    start = torch.cuda.memory_allocated(device)
    peak = [0]
    original = torch.cuda.reset_peak_memory_stats

    def reset(dev=None):  # the engine resets the counter to size its chunks: keep the peak
        peak[0] = max(peak[0], torch.cuda.max_memory_allocated(device))
        original(dev)

    torch.cuda.reset_peak_memory_stats = reset
    try:
        original(device)
        with Timer(device) as t:
            fn()
        peak[0] = max(peak[0], torch.cuda.max_memory_allocated(device))
    finally:
        torch.cuda.reset_peak_memory_stats = original
    return t.seconds, (peak[0] - start) / 2**20, torch.cuda.memory_reserved(device) / 2**20


def main(argv: list[str] | None = None) -> int:
    from segexplorer.engine.devices import resolve_device
    from segexplorer.engine.image import load_image, preprocess
    from segexplorer.engine.models import load_model
    from segexplorer.engine.segments import make_segments
    from segexplorer.engine.session import Session

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fcn_resnet101")
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--autotune", action="store_true",
                   help="torch.backends.cudnn.benchmark = True (cuDNN autotuning)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    if device.type != "cuda":
        raise SystemExit("this benchmark measures CUDA memory: use --device cuda")
    model = load_model(args.model, "untrained", device)
    torch.backends.cudnn.benchmark = args.autotune
    prepared = preprocess(load_image(default_image()), args.size)
    print("SegExplorer benchmark: CUDA memory of the engine's passes")
    print(machine_header(machine_info(device)))
    print(f"model {args.model}, {args.precision}, --size {args.size}; cuDNN benchmark="
          f"{torch.backends.cudnn.benchmark}; CUDNN_CONV_WSCAP_DBG="
          f"{os.environ.get('CUDNN_CONV_WSCAP_DBG', 'unset')}")
    base = Session(model, prepared, precision=args.precision)
    pred = base.predict()
    segments = make_segments(pred.class_map, "class")
    n = segments.count
    print(f"{len(pred.present_classes)} classes, {n} segments; after loading: "
          f"{torch.cuda.memory_allocated(device) / 2**20:,.0f} MiB allocated")
    def gradcam():
        Session(model, prepared, precision=args.precision).gradcam(None)

    cases = [("Grad-CAM, every class", gradcam)]
    for chunk in sorted({1, 2, 4, n}):
        def sweep(chunk=chunk):
            base.sweep(segments, chunk_size=chunk)
        cases.append((f"sweep, chunks of {chunk}", sweep))
    print(f"{'case':32}{'1st call':>11}{'1st peak':>13}{'2nd call':>11}{'2nd peak':>13}"
          f"{'reserved':>13}")
    for name, fn in cases:
        t1, p1, _ = measure(device, fn)
        t2, p2, reserved = measure(device, fn)
        print(f"{name:32}{fmt_s(t1):>11}{p1:>10,.0f} MiB{fmt_s(t2):>11}{p2:>10,.0f} MiB"
              f"{reserved:>10,.0f} MiB", flush=True)
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
