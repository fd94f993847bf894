"""Click-to-ablate latency: a cached click (one segment, after the sweep) vs an uncached one.

For each model: predict, build the segments, run the ablation sweep once (timed, shown
as the setup cost), then

* cached click: Session.ablate(segments, [one id], sweep=sweep), answered from the
  sweep's table and maps, plus the render a window would draw for it
  (segexplorer.render.decode_segmap of the new prediction and changed_pixels_map);
* uncached click: two segments at once (the sweep cannot answer it): one forward
  pass, plus the same render.

Median and 95th percentile over --clicks clicks of each kind. No timing is asserted.

    python benchmarks/bench_click.py --size 160 --clicks 10 --models lraspp_mobilenet_v3_large
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np
import torch
from bench_common import (
    Timer,
    click_arg_parser,
    default_image,
    fmt_s,
    machine_header,
    machine_info,
    percentile,
    run_models,
    write_results,
)

DEFAULT_MODELS = ("lraspp_mobilenet_v3_large", "fcn_resnet101")


def grid_segments(class_map: np.ndarray, n: int):
    """An n x n grid of tiles as segments (for models that predict fewer than 2 classes)."""
    from segexplorer.engine.segments import SegmentInfo, Segments

    h, w = class_map.shape
    rows = np.minimum(np.arange(h) * n // h, n - 1)
    cols = np.minimum(np.arange(w) * n // w, n - 1)
    ids = (rows[:, None] * n + cols[None, :]).astype(np.int64)
    info = []
    for seg in range(n * n):
        inside = class_map[ids == seg]
        if inside.size == 0:
            continue
        majority = int(np.bincount(inside).argmax())
        info.append(SegmentInfo(seg, majority, int(inside.size)))
    return Segments("grid", ids, tuple(info))


def summarize(values: list[float]) -> dict:
    return {"median_s": percentile(values, 50), "p95_s": percentile(values, 95),
            "min_s": float(np.min(values)), "max_s": float(np.max(values)), "n": len(values)}


def click(session, segments, ids, sweep, prediction, device) -> tuple[float, float, bool]:
    """One click: (seconds in Session.ablate, seconds rendering, answered from the cache)."""
    from segexplorer.render import changed_pixels_map, decode_segmap

    with Timer(device) as t_ablate:
        outcome = session.ablate(segments, ids, baseline="zero", sweep=sweep)
    with Timer(device) as t_render:
        decode_segmap(outcome.class_map_after)
        changed_pixels_map(prediction.class_map, outcome.class_map_after, prediction.image)
    return t_ablate.seconds, t_render.seconds, outcome.from_cache


def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    from segexplorer.engine.image import load_image, preprocess
    from segexplorer.engine.models import load_model
    from segexplorer.engine.segments import make_segments
    from segexplorer.engine.session import Session

    model = load_model(name, args.weights, device)
    image = preprocess(load_image(args.image), args.size)
    session = Session(model, image, precision=args.precision)
    with Timer(device) as t_predict:
        prediction = session.predict()
    segments = make_segments(prediction.class_map, args.segments)
    note = f"{args.segments} segments"
    if segments.count < 2:
        segments = grid_segments(prediction.class_map, args.grid)
        note = (f"the model predicts {len(prediction.present_classes)} class(es): "
                f"{args.grid} x {args.grid} grid tiles instead")
    with Timer(device) as t_sweep:
        sweep = session.sweep(segments, baseline="zero")
    ids = segments.id_list
    singles = itertools.cycle([[i] for i in ids])
    pairs = itertools.cycle([list(p) for p in itertools.combinations(ids, 2)])

    results = {}
    for kind, source, want_cached in (("cached", singles, True), ("uncached", pairs, False)):
        for _ in range(args.warmup):
            click(session, segments, next(source), sweep, prediction, device)
        ablate_s, render_s, total_s = [], [], []
        passes_before = session.forward_passes
        for _ in range(args.clicks):
            a, r, cached = click(session, segments, next(source), sweep, prediction, device)
            if cached != want_cached:
                raise SystemExit(f"a {kind} click was {'not ' if want_cached else ''}"
                                 "answered from the sweep: the benchmark is measuring the "
                                 "wrong thing")
            ablate_s.append(a)
            render_s.append(r)
            total_s.append(a + r)
        results[kind] = {
            "total": summarize(total_s),
            "ablate": summarize(ablate_s),
            "render": summarize(render_s),
            "forward_passes": session.forward_passes - passes_before,
        }
    return {
        "model": name,
        "weights": model.weights,
        "working_shape": list(image.shape),
        "segments": segments.count,
        "segments_note": note,
        "predict_s": t_predict.seconds,
        "sweep_s": t_sweep.seconds,
        "sweep_forward_passes": sweep.forward_passes,
        "sweep_chunk": sweep.chunk_size,
        **results,
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def report_model(r: dict) -> str:
    h, w = r["working_shape"]
    c, u = r["cached"], r["uncached"]
    ratio = u["total"]["median_s"] / max(1e-12, c["total"]["median_s"])
    lines = [
        f"{r['model']} ({r['weights']}), working {w} x {h}, {r['segments']} segments "
        f"({r['segments_note']})",
        f"  predict {fmt_s(r['predict_s'])}; sweep {fmt_s(r['sweep_s'])} "
        f"({r['sweep_forward_passes']} forward passes, chunk {r['sweep_chunk']}): paid once, "
        "before clicks are cached",
        f"  {'':28}{'median ms':>12}{'p95 ms':>12}{'ablate ms':>12}{'render ms':>12}"
        f"{'forwards':>10}",
    ]
    for label, d in (("cached click (1 segment)", c), ("uncached click (2 segments)", u)):
        lines.append(f"  {label:28}{ms(d['total']['median_s']):>12}{ms(d['total']['p95_s']):>12}"
                     f"{ms(d['ablate']['median_s']):>12}{ms(d['render']['median_s']):>12}"
                     f"{d['forward_passes']:>10}")
    lines.append(f"  uncached / cached (median): {ratio:.1f}x; the sweep pays for itself after "
                 f"{r['sweep_s'] / max(1e-12, u['total']['median_s'] - c['total']['median_s']):.1f}"
                 " single clicks")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = click_arg_parser(__doc__.split("\n\n")[0], DEFAULT_MODELS, "auto")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="bf16: fast mode (autocast)")
    p.add_argument("--grid", type=int, default=3,
                   help="grid tiles per side when the model predicts fewer than 2 segments")
    args = p.parse_args(argv)
    if args.clicks < 1 or args.warmup < 0 or args.grid < 2:
        p.error("--clicks must be >= 1, --warmup >= 0, --grid >= 2")
    args.image = args.image or default_image()
    return args


def main(argv: list[str] | None = None) -> int:
    from segexplorer.engine.devices import resolve_device

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    info = machine_info(device)
    print("SegExplorer benchmark: click-to-ablate latency (cached vs uncached)")
    print(machine_header(info))
    print(f"image:   {args.image}; --size {args.size}; {args.clicks} clicks of each kind "
          f"after {args.warmup} warm-up; precision {args.precision}")
    results = run_models(args, lambda name: bench_model(name, args, device), report_model)
    if args.json:
        write_results(args.json, "click", vars(args), info, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
