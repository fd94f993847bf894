"""Every class of one image, each method: SegExplorer's shared passes vs the library's
calls looped over the classes, in the same run.

For each method (rows below), on one image, model and working size:

* **ours**: ``engine.attribution.compute(session, method, targets)``: one set of model
  evaluations for all T classes (each coalition / window / path image goes through the
  model once and gives every class's score; gradients are taken per class);
* **loop**: the reference library's call for one class, looped over the T classes, as a
  user of Captum (or pytorch-grad-cam, for HiResCAM, which Captum lacks) writes it.

Each side runs ``--repeat`` times, alternating which goes first, and the fastest run is
kept. Printed per method, in one unit on both sides: images through the model (counted by
a forward pre-hook on the network; the calls that carried them apart), images through a
backward pass (one per image and class: Captum's integrated gradients on n steps takes
n per class), seconds, the peak resident memory of each side (Linux VmHWM, reset before
each side; on CUDA the peak allocated memory), and the ratios loop / ours, plus the
largest difference of the maps (they are the same numbers, tests/test_methods_parity.py
checks them to 1e-5).

Both sides run in the same arithmetic, printed at the start: strict fp32 (on CUDA TF32
is switched off for the library's calls too, as the engine's fp32 mode does for its
own; PyTorch's default would run the library's convolutions in TF32 and make the
comparison one of different arithmetic). ``--budget GIB`` sets the engine's memory
budget (default: the device's, engine.budget).

Shapley values on S segments: the players are a grid of S rectangles (an untrained model
predicts few classes). Exact Shapley at S = 8 is not run on Captum's side: its
``ShapleyValues`` walks all S! orders, S * S! + 1 = 322,561 forward passes per class; that
count is printed (marked "not run"), and exact at S = 4 is run on both sides to time it.

    python benchmarks/bench_methods.py                        # fcn_resnet50, 64 px, 3 classes
    python benchmarks/bench_methods.py --size 96 --classes 5 --methods shapley8,occlusion
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from bench_common import (
    ForwardCounter,
    Memory,
    Timer,
    default_image,
    fmt_s,
    machine_header,
    machine_info,
    same_arithmetic,
)

ROWS = ("shapley4", "shapley8", "shapley8_sampled", "occlusion", "ig", "layer_ig",
        "hirescam", "guided_gradcam")


@dataclass
class Side:
    images: int = 0
    calls: int = 0
    backward: int = 0
    seconds: float = 0.0
    peak_mib: float | None = None
    run: bool = True
    note: str = ""
    maps: dict[int, np.ndarray] = field(default_factory=dict)
    raw: dict[int, np.ndarray] = field(default_factory=dict)


def grid_segments(h: int, w: int, count: int):
    """``count`` rectangles (2 rows) as Segments: the players of the Shapley rows."""
    from segexplorer.engine.segments import SegmentInfo, Segments

    rows = 2 if count >= 4 else 1
    cols = math.ceil(count / rows)
    ids = np.zeros((h, w), np.int64)
    for r in range(rows):
        for c in range(cols):
            k = min(r * cols + c, count - 1)
            ids[r * h // rows:(r + 1) * h // rows, c * w // cols:(c + 1) * w // cols] = k
    info = tuple(SegmentInfo(k, 0, int((ids == k).sum())) for k in range(count))
    return Segments("grid", ids, info)


def run_ours(session, row: str, targets, options, segments, counter, device) -> Side:
    from segexplorer.engine.attribution import compute

    method = row.replace("shapley4", "shapley").replace("shapley8_sampled", "shapley") \
        .replace("shapley8", "shapley")
    counter.reset()
    with Memory(device) as mem, Timer(device) as t:
        maps = compute(session, method, targets, options, segments=segments)
    assert maps.forward == counter.images, (row, maps.forward, counter.images)  # one unit
    side = Side(images=counter.images, calls=counter.calls, backward=maps.backward,
                seconds=t.seconds, peak_mib=mem.peak, note=maps.detail)
    side.maps = {c: maps.maps[c] for c in targets}
    side.raw = {c: maps.raw[c] for c in targets if c in maps.raw}
    return side


def hirescam_as_pytorch_grad_cam(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Our raw HiResCAM through pytorch-grad-cam's own ReLU, scaling and resize."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    h, w = size
    return scale_cam_image(scale_cam_image(np.maximum(raw, 0)[None], (w, h)))[0]


def warm_up(session, targets) -> None:
    """One Grad-CAM pass and one guided pass, untimed: the first backward of a process
    pays for allocations and thread start-up, which would land on whichever side runs
    first."""
    from segexplorer.engine.attribution import compute

    compute(session, "guided_gradcam", targets[:1])


def run_loop(session, row: str, targets, options, segments, counter, device) -> Side:
    from captum.attr import (
        GuidedGradCam,
        IntegratedGradients,
        LayerIntegratedGradients,
        Occlusion,
        ShapleyValues,
        ShapleyValueSampling,
    )

    from segexplorer.engine.aggregation import Aggregation, make_wrapper
    from segexplorer.engine.methods import occlusion_geometry

    model = session.model
    wrapper = make_wrapper(model.logits, Aggregation(), session.class_map_tensor)
    inp = session.input
    side = Side()
    if row == "shapley8":
        s = segments.count
        side.run = False
        side.images = len(targets) * (s * math.factorial(s) + 1)
        side.calls = side.images
        side.note = f"not run: ShapleyValues walks {s}! orders, {s} x {s}! + 1 per class"
        return side

    class Wrapped(torch.nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.net = model.module
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    mask = None
    if segments is not None:
        mask = torch.as_tensor(segments.rows_map(), device=inp.device).view(
            1, 1, *segments.ids.shape)
    counter.reset()
    backward = 0
    with Memory(device) as mem, Timer(device) as t:
        for c in targets:
            if row == "shapley4":
                attr = ShapleyValues(wrapper).attribute(inp, feature_mask=mask, target=c)[0, 0]
            elif row == "shapley8_sampled":
                torch.manual_seed(options.seed)
                attr = ShapleyValueSampling(wrapper).attribute(
                    inp, feature_mask=mask, target=c, n_samples=options.n_samples)[0, 0]
            elif row == "occlusion":
                wh, ww, sy, sx = occlusion_geometry(*session.image.shape, options)
                attr = Occlusion(wrapper).attribute(inp, sliding_window_shapes=(3, wh, ww),
                                                    strides=(3, sy, sx), target=c)[0, 0]
            elif row == "ig":
                attr = IntegratedGradients(wrapper).attribute(
                    inp, target=c, n_steps=options.n_steps)[0].sum(0)
                backward += options.n_steps  # one backward call through n step images
            elif row == "layer_ig":
                full = LayerIntegratedGradients(wrapper, model.layer()).attribute(
                    inp, target=c, n_steps=options.n_steps)
                attr = torch.nn.functional.interpolate(full.sum(1, keepdim=True),
                                                       session.image.shape)[0, 0]
                backward += options.n_steps
            elif row == "hirescam":
                from pytorch_grad_cam import HiResCAM
                from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

                pred = session.predict()
                with HiResCAM(model=Wrapped(model.logits),
                              target_layers=[model.layer()]) as cam:
                    attr = torch.as_tensor(cam(
                        input_tensor=inp.clone().requires_grad_(True),
                        targets=[SemanticSegmentationTarget(
                            c, (pred.class_map == c).astype(np.float32))])[0])
                backward += 1
            elif row == "guided_gradcam":
                attr = GuidedGradCam(Wrapped(wrapper), model.layer()).attribute(
                    inp.clone().requires_grad_(True), target=c)[0].sum(0)
                backward += 2
            else:
                raise SystemExit(f"unknown row {row}")
            side.maps[c] = attr.detach().cpu().numpy()
    side.images, side.calls, side.backward = counter.images, counter.calls, backward
    if row == "hirescam":
        side.note = "pytorch-grad-cam (ReLU'd and scaled: ours compared after the same)"
    side.seconds, side.peak_mib = t.seconds, mem.peak
    return side


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default=None)
    p.add_argument("--model", default="fcn_resnet50")
    p.add_argument("--weights", default="untrained")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--classes", type=int, default=3, help="T, the classes explained")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--methods", default=",".join(ROWS), help=f"rows: {', '.join(ROWS)}")
    p.add_argument("--n-steps", type=int, default=50)
    p.add_argument("--n-samples", type=int, default=25)
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each side, alternating which goes first; the fastest is "
                        "shown (a shared machine's load makes single runs noisy)")
    p.add_argument("--budget", type=float, default=None, metavar="GIB",
                   help="the engine's memory budget (default: the device's)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from segexplorer.engine.budget import resolve_budget
    from segexplorer.engine.image import load_image, preprocess
    from segexplorer.engine.methods import MethodOptions
    from segexplorer.engine.models import load_model
    from segexplorer.engine.session import Session

    model = load_model(args.model, args.weights, args.device)
    device = model.device
    info = machine_info(device)
    print(machine_header(info))
    arithmetic = same_arithmetic(device)
    info["arithmetic"] = arithmetic
    print(arithmetic)
    counter = ForwardCounter(model.module)
    budget = resolve_budget(device, args.budget)
    print(f"budget:  {budget.describe()} (the engine's chunks; the loop side batches as "
          "the library does)")
    session = Session(model, preprocess(load_image(args.image or default_image()), args.size,
                                        model.normalization), budget=budget)
    pred = session.predict()
    present = pred.present_classes
    targets = (present + [c for c in range(model.num_classes) if c not in present])[
        :args.classes]
    h, w = session.image.shape
    print(f"model:   {args.model} ({args.weights}), {h} x {w} px, T = {len(targets)} classes "
          f"{targets}\n")
    options = MethodOptions(n_steps=args.n_steps, n_samples=args.n_samples)
    warm_up(session, targets)
    results = []
    header = (f"{'method':18} {'side':5} {'images':>9} {'calls':>6} {'bwd img':>8} "
              f"{'seconds':>10} {'peak MiB':>9}   note")
    print(header)
    print("-" * len(header))
    for row in [r.strip() for r in args.methods.split(",") if r.strip()]:
        segments = None
        row_options = options
        if row.startswith("shapley"):
            segments = grid_segments(h, w, 4 if row == "shapley4" else 8)
            row_options = options.with_(
                shapley_mode="sampling" if row.endswith("sampled") else "exact")
        ours = loop = None
        for r in range(args.repeat):  # alternating which side runs first; the fastest kept
            sides = ("ours", "loop") if r % 2 == 0 else ("loop", "ours")
            for name in sides:
                run = run_ours if name == "ours" else run_loop
                side = run(session, row, targets, row_options, segments, counter, device)
                best = ours if name == "ours" else loop
                if best is None or (side.run and side.seconds < best.seconds):
                    best = side
                if name == "ours":
                    ours = best
                else:
                    loop = best
        assert ours is not None and loop is not None
        diff = None
        if row == "hirescam":
            ours.maps = {c: hirescam_as_pytorch_grad_cam(ours.raw[c], (h, w)) for c in targets}
        if loop.run:
            diff = max(float(np.abs(ours.maps[c] - loop.maps[c]).max()
                             / max(np.abs(loop.maps[c]).max(), 1e-12)) for c in targets)
        for name, side in (("ours", ours), ("loop", loop)):
            peak = f"{side.peak_mib:9.0f}" if side.peak_mib is not None else f"{'-':>9}"
            secs = fmt_s(side.seconds) if side.run else "not run"
            print(f"{row:18} {name:5} {side.images:9d} {side.calls:6d} {side.backward:8d} "
                  f"{secs:>10} {peak}   {side.note}")
        ratio_images = loop.images / max(ours.images, 1)
        ratio_s = loop.seconds / ours.seconds if loop.run and ours.seconds else None
        print(f"{'':18} ratio loop/ours: images {ratio_images:.1f}x"
              + (f", time {ratio_s:.1f}x" if ratio_s else "")
              + (f"; max |diff| / max |map| {diff:.1e}" if diff is not None else "") + "\n")
        results.append({"method": row, "targets": targets,
                        "ours": {k: v for k, v in ours.__dict__.items()
                                 if k not in ("maps", "raw")},
                        "loop": {k: v for k, v in loop.__dict__.items()
                                 if k not in ("maps", "raw")},
                        "ratio_images": ratio_images, "ratio_seconds": ratio_s,
                        "max_relative_difference": diff})
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "bench_methods", "args": vars(args), "machine": info,
                       "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "rows": results}, f,
                      indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
