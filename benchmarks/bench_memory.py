"""Peak memory of each method under a memory budget, with the chunks the engine chose.

For one image, model and working size, each method runs under each ``--budgets`` GiB
(engine.budget: the images of one model call must fit it), each run in its own
subprocess so that its peak belongs to it alone. Printed per run: images through the
model, the calls that carried them, the largest chunk, the memory one image took as the
engine measured it (the first chunk, of one image), the peak above the start of the
method (CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated; CPU: the
growth of the process's peak resident memory, Linux VmHWM, reset at the start), the
process's whole peak, whether the peak stayed within the budget, and seconds. Then the
maps of each budget against the first budget's: the largest difference relative to the
largest magnitude, and whether they are the same bits (on a CPU, torch's convolution
kernels give last-bit differences between batch sizes: equal bits only where the chunks
are the same).

The budget bounds what one chunk's images take, above the model's weights; an image that
alone needs more runs alone (the peak is then one image's, above the budget: printed).

    # every method under 4 GiB on a GPU (gpu_session.sh's memory step)
    python benchmarks/bench_memory.py --device cuda --size 640 --budgets 4
    # integrated gradients on fcn_resnet101 at 640 px on this CPU, two budgets
    python benchmarks/bench_memory.py --device cpu --size 640 --methods ig --budgets 3,6 \\
        --n-steps 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import (
    Memory,
    current_rss_mib,
    default_image,
    machine_header,
    machine_info,
    peak_rss_mib,
    same_arithmetic,
)

METHODS_ALL = ("gradcam", "activation", "ablation", "shapley", "occlusion", "ig", "layer_ig",
               "hirescam", "guided_gradcam")


def run_one(args) -> dict:
    """One method under one budget, in this process: its counts, chunks and peak."""
    from segexplorer.engine.attribution import compute
    from segexplorer.engine.budget import GIB, INFERENCE, gradient_kind, resolve_budget
    from segexplorer.engine.image import load_image, preprocess
    from segexplorer.engine.layers import normalize_layer_path
    from segexplorer.engine.methods import MethodOptions
    from segexplorer.engine.models import load_model
    from segexplorer.engine.session import Session

    model = load_model(args.model, args.weights, args.device)
    device = model.device
    same_arithmetic(device)
    budget = resolve_budget(device, args.budget)
    prepared = preprocess(load_image(args.image or default_image()), args.size,
                          model.normalization)
    session = Session(model, prepared, budget=budget)
    pred = session.predict()
    targets = pred.present_classes[:args.classes]
    options = MethodOptions(n_steps=args.n_steps, n_samples=args.n_samples)
    method = args.one
    kind = {"ig": gradient_kind("ig"),
            "layer_ig": gradient_kind(
                f"layer_ig:{normalize_layer_path(model.default_layer)}")}.get(method, INFERENCE)
    rss_before = current_rss_mib() if device.type != "cuda" else None
    with Memory(device) as mem:
        start = time.perf_counter()
        maps = compute(session, method, targets, options)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    arrays: dict = {f"m{c}": maps.maps[c] for c in targets}
    np.savez(args.maps_out, **arrays)
    peak = mem.peak
    if peak is not None and rss_before is not None:
        peak -= rss_before  # the CPU's Memory reads the process's VmHWM: its growth here
    per_image = session.memory.image_memory(kind)
    chunk = session.memory.chunk_for(kind)
    return {"method": method, "budget_gib": budget.gib, "budget": budget.describe(),
            "images": maps.forward, "calls": maps.calls, "backward_images": maps.backward,
            "chunk": chunk, "per_image_mib": None if per_image is None else per_image / 2**20,
            "peak_mib": peak, "process_peak_mib": (
                torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
                else peak_rss_mib()),
            "rss_after_mib": current_rss_mib(), "within_budget": (
                peak is not None and peak * 2**20 <= budget.limit),
            "seconds": seconds, "targets": targets, "working_size": list(prepared.shape),
            "budget_bytes": budget.limit, "gib": GIB}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default=None)
    p.add_argument("--model", default="fcn_resnet101")
    p.add_argument("--weights", default="untrained")
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", default=",".join(METHODS_ALL))
    p.add_argument("--budgets", default="4", help="GiB, comma-separated")
    p.add_argument("--classes", type=int, default=3, help="the largest predicted classes")
    p.add_argument("--n-steps", type=int, default=50)
    p.add_argument("--n-samples", type=int, default=25)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child's method
    p.add_argument("--budget", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--maps-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return 0
    getattr(sys.stdout, "reconfigure", lambda **_: None)(line_buffering=True)  # rows as they come

    from segexplorer.engine.budget import GIB, format_bytes

    info = machine_info(torch.device(args.device))
    print(machine_header(info))
    print(same_arithmetic(torch.device(args.device)))
    print(f"model:   {args.model} ({args.weights}), shorter side {args.size} px, "
          f"n_steps {args.n_steps}\n")
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    header = (f"{'budget':>9} {'method':15} {'images':>6} {'calls':>5} {'chunk':>5} "
              f"{'MiB/img':>8} {'peak MiB':>9} {'process':>8} {'within':>6} {'seconds':>8}")
    print(header)
    print("-" * len(header))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            first = None
            for gib in budgets:
                maps_out = Path(tmp) / f"{method}_{gib}.npz"
                cmd = [sys.executable, __file__, "--one", method, "--budget", str(gib),
                       "--maps-out", str(maps_out), "--model", args.model, "--weights",
                       args.weights, "--size", str(args.size), "--device", args.device,
                       "--classes", str(args.classes), "--n-steps", str(args.n_steps),
                       "--n-samples", str(args.n_samples)]
                if args.image:
                    cmd += ["--image", args.image]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                done = subprocess.run(cmd, capture_output=True, text=True,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
                line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")),
                            None)
                if line is None:
                    print(f"{format_bytes(gib * GIB):>9} {method:15} failed: "
                          f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
                    rows.append({"method": method, "budget_gib": gib, "error": done.stderr})
                    continue
                row = json.loads(line[len("RESULT "):])
                with np.load(maps_out) as npz:
                    maps = {k: npz[k] for k in npz.files}
                if first is None:
                    first = maps
                else:
                    diffs = [float(np.abs(maps[k] - first[k]).max()
                                   / max(np.abs(first[k]).max(), 1e-12)) for k in first]
                    row["max_relative_difference_to_first_budget"] = max(diffs, default=0.0)
                    row["same_bits_as_first_budget"] = all(
                        np.array_equal(maps[k], first[k]) for k in first)
                per = f"{row['per_image_mib']:8.0f}" if row["per_image_mib"] else f"{'-':>8}"
                peak = f"{row['peak_mib']:9.0f}" if row["peak_mib"] is not None else "?"
                print(f"{format_bytes(gib * GIB):>9} {method:15} {row['images']:6d} {row['calls']:5d} "
                      f"{row['chunk'] or '-':>5} {per} {peak} "
                      f"{row['process_peak_mib']:8.0f} {'yes' if row['within_budget'] else 'NO':>6} "
                      f"{row['seconds']:8.1f}"
                      + (f"   vs first budget: {row['max_relative_difference_to_first_budget']:.1e}"
                         f"{' (same bits)' if row['same_bits_as_first_budget'] else ''}"
                         if "same_bits_as_first_budget" in row else ""), flush=True)
                rows.append(row)
    peaks = [r["peak_mib"] for r in rows if r.get("peak_mib") is not None]
    failed = [r for r in rows if "error" in r]
    over = [r for r in rows if "error" not in r and not r["within_budget"]]
    print(f"\nlargest peak {max(peaks, default=0):.0f} MiB; {len(over)} run(s) above their "
          f"budget, {len(failed)} failed")
    if over:
        print("above the budget: " + ", ".join(
            f"{r['method']} at {format_bytes(r['budget_gib'] * GIB)} (one image takes "
            + (f"{r['per_image_mib']:.0f} MiB)" if r["per_image_mib"] else "?)")
            for r in over))
    if args.json:
        Path(args.json).write_text(json.dumps({"benchmark": "bench_memory", "args": vars(args),
                                               "machine": info, "rows": rows}, indent=2))
        print(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
