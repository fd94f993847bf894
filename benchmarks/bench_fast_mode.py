"""Fast mode (bf16 autocast) against fp32: time and the largest relative score error.

The all-classes analysis (prediction + Grad-CAM for every predicted class + the ablation
sweep) runs twice on one device in one run, fp32 (the default, Captum-exact) and bf16.
Printed: wall time of each and their ratio, and how far bf16's numbers are from fp32's:
the largest relative error of the class scores (unperturbed and with every segment
ablated, relative to the largest |score|), of the ablation table and of the Grad-CAM maps.

    python benchmarks/bench_fast_mode.py --device cuda [--model fcn_resnet101] [--size 640]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from bench_common import Timer, default_image, fmt_s, machine_header, machine_info


def analyse(model, prepared, precision: str, device: torch.device) -> tuple[float, dict]:
    from segexplorer.engine.segments import make_segments
    from segexplorer.engine.session import Session

    with Timer(device) as t:
        session = Session(model, prepared, precision=precision)
        cam = session.gradcam(None)
        pred = session.predict()
        sweep = session.sweep(make_segments(pred.class_map, "class"), "zero")
    return t.seconds, {"cam": cam.raw, "sweep": sweep, "class_map": pred.class_map}


def relative(a: np.ndarray, b: np.ndarray) -> float:
    scale = float(np.abs(a).max()) or 1.0
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) / scale


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
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    model = load_model(args.model, args.weights, device)
    prepared = preprocess(load_image(args.image or default_image()), args.size)
    print("SegExplorer benchmark: fast mode (bf16 autocast) vs fp32")
    print(machine_header(machine_info(device)))
    print(f"model:   {args.model} ({args.weights}), --size {args.size}")
    analyse(model, prepared, "fp32", device)  # warm-up (cuDNN autotuning, caches)
    t32, exact = analyse(model, prepared, "fp32", device)
    t16, fast = analyse(model, prepared, "bf16", device)
    s32, s16 = exact["sweep"], fast["sweep"]
    print(f"fp32 {fmt_s(t32)}, bf16 {fmt_s(t16)}: bf16 is {t32 / t16:.2f}x as fast")
    same_map = float((exact["class_map"] == fast["class_map"]).mean())
    print(f"pixels with the same predicted class: {same_map:.4%}")
    if s32.segments.id_list != s16.segments.id_list:
        print("the two precisions predict different segments: scores not compared")
        return 0
    scores32 = np.vstack([s32.initial_scores, s32.ablated_scores])
    scores16 = np.vstack([s16.initial_scores, s16.ablated_scores])
    print(f"largest relative score error: {relative(scores32, scores16):.2e} "
          "(unperturbed and every ablated segment, all classes)")
    print(f"largest relative ablation-table error: {relative(s32.table, s16.table):.2e}")
    cams = [relative(exact["cam"][c], fast["cam"][c]) for c in exact["cam"] if c in fast["cam"]]
    if cams:
        print(f"largest relative Grad-CAM error: {max(cams):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
