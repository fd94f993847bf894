"""Fast mode (bf16 autocast) and TF32 against strict fp32: time and the largest errors.

The all-classes analysis (prediction + Grad-CAM for every predicted class + the ablation
sweep) runs on one device in one run in each precision:

* fp32: the default, strict IEEE float32, Captum-exact;
* tf32 (CUDA only): the same calls with PyTorch's default TF32 convolutions left on, as
  the seed's code runs on a GPU out of the box (not an engine mode: shown for reference);
* bf16: fast mode (autocast, channels-last on CUDA).

Printed: wall time of each and its ratio to fp32, and how far its numbers are from fp32's:
the largest relative error of the class scores (unperturbed and with every segment
ablated, relative to the largest |score|), of the ablation table and of the Grad-CAM maps.
With --layouts, also the time of one forward pass per precision, memory layout and batch
size (is channels-last worth it?).

    python benchmarks/bench_fast_mode.py --device cuda [--model fcn_resnet101] [--size 640]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from unittest import mock

import numpy as np
import torch
from bench_common import Timer, default_image, fmt_s, machine_header, machine_info


def numerics(precision: str):
    """tf32: the engine's fp32 calls without its switch to strict fp32 (benchmark only)."""
    if precision != "tf32":
        return contextlib.nullcontext()
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default
    return mock.patch("segexplorer.engine.session.strict_fp32", contextlib.nullcontext)


def analyse(model, prepared, precision: str, device: torch.device) -> tuple[float, dict]:
    from segexplorer.engine.segments import make_segments
    from segexplorer.engine.session import Session

    with numerics(precision), Timer(device) as t:
        session = Session(model, prepared, precision="bf16" if precision == "bf16" else "fp32")
        cam = session.gradcam(None)
        pred = session.predict()
        sweep = session.sweep(make_segments(pred.class_map, "class"), baseline="zero")
    return t.seconds, {"cam": cam.raw, "sweep": sweep, "class_map": pred.class_map}


def relative(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.abs(a).max()) or 1.0
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) / scale


def compare(exact: dict, other: dict, label: str) -> None:
    s32, s = exact["sweep"], other["sweep"]
    same_map = float((exact["class_map"] == other["class_map"]).mean())
    print(f"{label}: pixels with the same predicted class as fp32: {same_map:.4%}")
    if s32.segments.id_list != s.segments.id_list:
        print(f"{label}: predicts other segments than fp32: scores not compared")
        return
    scores32 = np.vstack([s32.initial_scores, s32.ablated_scores])
    scores = np.vstack([s.initial_scores, s.ablated_scores])
    print(f"{label}: largest relative score error {relative(scores32, scores):.2e} "
          "(unperturbed and every ablated segment, all classes)")
    print(f"{label}: largest relative ablation-table error {relative(s32.table, s.table):.2e}")
    cams = [relative(exact["cam"][c], other["cam"][c]) for c in exact["cam"] if c in other["cam"]]
    if cams:
        print(f"{label}: largest relative Grad-CAM error {max(cams):.2e}")


def layouts(model, prepared, device: torch.device, precisions: list[str], repeat: int) -> None:
    """Median time of one forward pass per precision, layout and batch size."""
    print(f"\none forward pass (median of {repeat}), {prepared.shape[1]} x {prepared.shape[0]}:")
    print(f"{'precision':10}{'layout':16}{'batch 1':>12}{'batch 4':>12}{'per image (4)':>15}")
    for precision in precisions:
        for layout in (torch.contiguous_format, torch.channels_last):
            module = model.module.to(memory_format=layout)
            row = []
            for batch_size in (1, 4):
                batch = prepared.tensor.to(device).expand(batch_size, -1, -1, -1)
                batch = batch.contiguous(memory_format=layout)
                cast = (torch.autocast(device.type, dtype=torch.bfloat16)
                        if precision == "bf16" else contextlib.nullcontext())
                torch.backends.cudnn.allow_tf32 = precision == "tf32"
                times = []
                with torch.inference_mode(), cast:
                    for i in range(repeat + 2):  # two untimed: cuDNN autotuning
                        with Timer(device) as t:
                            module(batch)
                        if i >= 2:
                            times.append(t.seconds)
                row.append(float(np.median(times)))
            name = "contiguous" if layout == torch.contiguous_format else "channels-last"
            print(f"{precision:10}{name:16}{fmt_s(row[0]):>12}{fmt_s(row[1]):>12}"
                  f"{fmt_s(row[1] / 4):>15}", flush=True)
    model.module.to(memory_format=torch.contiguous_format)


def main(argv: list[str] | None = None) -> int:
    from segexplorer.engine.devices import resolve_device
    from segexplorer.engine.image import load_image, preprocess
    from segexplorer.engine.models import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default=None)
    p.add_argument("--model", default="fcn_resnet101")
    p.add_argument("--weights", default="untrained")
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--device", default="auto")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each precision")
    p.add_argument("--layouts", action="store_true",
                   help="also time single forward passes per precision, layout and batch")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    model = load_model(args.model, args.weights, device)
    prepared = preprocess(load_image(args.image or default_image()), args.size)
    precisions = ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32", "bf16"]
    print("SegExplorer benchmark: fast mode (bf16 autocast) and TF32 vs strict fp32")
    print(machine_header(machine_info(device)))
    print(f"model:   {args.model} ({args.weights}), --size {args.size}, "
          f"working {prepared.shape[1]} x {prepared.shape[0]}")
    results, times = {}, {}
    for precision in precisions:
        analyse(model, prepared, precision, device)  # warm-up (cuDNN autotuning, caches)
        runs = [analyse(model, prepared, precision, device) for _ in range(args.repeat)]
        times[precision] = float(np.median([t for t, _ in runs]))
        results[precision] = runs[-1][1]
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default, for what follows
    print(f"all-classes analysis (median of {args.repeat}): " + ", ".join(
        f"{k} {fmt_s(v)} ({times['fp32'] / v:.2f}x fp32's speed)" for k, v in times.items()))
    for precision in precisions[1:]:
        compare(results["fp32"], results[precision], precision)
    sys.stdout.flush()
    if args.layouts:
        layouts(model, prepared, device, precisions, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
