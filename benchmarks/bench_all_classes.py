"""Every class of one image: the seed's Captum calls per class vs the engine's shared work.

(a) seed: the tutorial's code, looped over the target classes. One initial forward pass
    (input with requires_grad, as the seed does), then for every target class
    LayerGradCam(wrapper, layer).attribute + LayerAttribution.interpolate and
    FeatureAblation(wrapper).attribute(feature_mask=out_max, perturbations_per_eval=2).
(b) engine: Session.predict + Session.gradcam(all targets, one forward pass) +
    Session.sweep(class segments) (one forward per segment; FeatureAblation for any
    target is then a lookup). After its timed runs it also times the sweep's images as
    bare forward passes (same chunks, nothing else) to show what the sweep adds.
With --fast, (c) fast: the engine in fast mode (bf16 autocast, channels-last on CUDA).
On CUDA, (d) seed_tf32: the seed's calls under PyTorch's defaults, which let cuDNN use
TF32 for convolutions; (a) then runs in strict fp32 like the engine, so (a) and (b) do
the same arithmetic and must give the same numbers.

Each variant runs in its own subprocess (this script re-invokes itself with --variant),
so the process-wide, monotonic peak RSS belongs to that variant alone. The parent
prints wall times, their ratio, forward passes, peak memory and the largest difference
between the two variants' maps. No timing is asserted anywhere.

    python benchmarks/bench_all_classes.py --size 160 --classes 3 --model fcn_resnet50
"""

from __future__ import annotations

import argparse
import gc
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
    ForwardCounter,
    Timer,
    current_rss_mib,
    default_image,
    fmt_s,
    machine_header,
    machine_info,
    peak_rss_mib,
    reset_peak_rss,
    window_peak_rss_mib,
)

RESULT_PREFIX = "BENCH_RESULT "
VARIANTS = ("seed", "seed_tf32", "engine", "fast")
LABELS = {"seed": "seed (Captum/class)", "seed_tf32": "seed, TF32 convs",
          "engine": "engine fp32", "fast": "engine fast"}
# A variant's map "matches" when max |diff| <= RTOL * max |seed map| (float32 noise:
# Captum batches two perturbations per forward, the engine one on the CPU).
RTOL = 1e-4


# ---------------------------------------------------------------------- shared helpers


def choose_targets(class_map: np.ndarray, k: int | None, num_classes: int) -> list[int]:
    """Every predicted class (largest share first), or exactly K classes.

    With K: the K predicted classes with the largest share; if fewer than K are
    predicted (untrained models predict few), the first K class indices.
    """
    counts = np.bincount(class_map.ravel(), minlength=num_classes)
    present = sorted((int(c) for c in np.flatnonzero(counts)), key=lambda c: (-counts[c], c))
    if k is None:
        return present
    if k < 1 or k > num_classes:
        raise SystemExit(f"--classes must be between 1 and {num_classes}.")
    return present[:k] if len(present) >= k else list(range(k))


def seed_module(name: str, weights: str, device: torch.device) -> tuple[torch.nn.Module, str]:
    """The model as the seed holds it: torchvision's module, eval, parameters requiring grad.

    With real weights the seed's ``fcn_resnet101(pretrained=True)`` also carries the aux
    head (computed on every forward, never read): it is rebuilt here when the weights
    file has one. Untrained: the engine's seeded weights (so both variants agree), as
    torchvision builds it without weights (no aux head).
    """
    from torchvision.models import segmentation as tv_seg

    from segexplorer.engine.models import get_architecture, load_model
    from segexplorer.engine.weights import load_state_dict_for

    arch = get_architecture(name)
    builder = getattr(tv_seg, name, None)
    module = None
    if weights != "untrained" and builder is not None:
        state_dict = load_state_dict_for(arch, weights)
        has_aux = any(k.startswith("aux_classifier.") for k in state_dict)
        kwargs = {"weights": None, "weights_backbone": None,
                  "num_classes": len(arch.categories)}
        if has_aux:
            kwargs["aux_loss"] = True
        module = builder(**kwargs)
        module.load_state_dict(state_dict)
        note = f"torchvision {name}, aux head {'on' if has_aux else 'absent'}"
    if module is None:
        module = load_model(name, weights, device).module
        note = f"torchvision {name} ({'untrained, engine seed' if weights == 'untrained' else weights})"
    module.eval().requires_grad_(True).to(device)  # torchvision's default: params need grad
    return module, note + ", parameters require grad (as the seed)"


# ---------------------------------------------------------------------- the two variants


def run_seed_once(module, image, device, layer_path, k, counter) -> dict:
    from captum.attr import FeatureAblation, LayerAttribution, LayerGradCam

    from segexplorer.engine.aggregation import Aggregation, make_wrapper
    from segexplorer.engine.models import get_layer

    stages = {"predict": 0.0, "gradcam": 0.0, "ablation": 0.0}
    raw, up, fa_maps = {}, {}, {}
    with Timer(device) as total:
        with Timer(device) as t:
            normalized_inp = image.tensor.to(device)
            normalized_inp.requires_grad = True
            out = module(normalized_inp)["out"]
            out_max = torch.argmax(out, dim=1, keepdim=True)
            class_map = out_max[0, 0].cpu().numpy()
        stages["predict"] = t.seconds
        targets = choose_targets(class_map, k, out.shape[1])
        # the seed's agg_segmentation_wrapper
        wrapper = make_wrapper(lambda x: module(x)["out"], Aggregation(), out_max)
        lgc = LayerGradCam(wrapper, get_layer(module, layer_path))
        fa = FeatureAblation(wrapper)
        for c in targets:
            with Timer(device) as t:
                gc_attr = lgc.attribute(normalized_inp, target=c)
                upsampled_gc_attr = LayerAttribution.interpolate(gc_attr, normalized_inp.shape[2:])
                raw[c] = gc_attr[0, 0].detach().cpu().numpy()
                up[c] = upsampled_gc_attr[0, 0].detach().cpu().numpy()
            stages["gradcam"] += t.seconds
            with Timer(device) as t:
                fa_attr = fa.attribute(normalized_inp, feature_mask=out_max,
                                       perturbations_per_eval=2, target=c)
                fa_maps[c] = fa_attr[0, 0].detach().cpu().numpy()
            stages["ablation"] += t.seconds
    segments = len(np.unique(class_map))
    del out  # the seed keeps the first forward's graph alive all along
    return {
        "seconds": total.seconds,
        "stages": stages,
        "targets": targets,
        "segments": segments,
        "forward_calls": counter.calls,
        "images_forwarded": counter.images,
        "backward_passes": len(targets),
        "arrays": (raw, up, fa_maps),
    }


def run_engine_once(model, image, device, k, counter, precision="fp32") -> dict:
    from segexplorer.engine.segments import make_segments
    from segexplorer.engine.session import Session

    stages = {}
    with Timer(device) as total:
        session = Session(model, image, precision=precision)
        if k is None:
            # every predicted class: one forward pass gives the prediction and all Grad-CAMs
            stages["predict"] = 0.0
            with Timer(device) as t:
                cam = session.gradcam(None)
                pred = session.predict()
                targets = list(cam.raw)
            stages["gradcam"] = t.seconds
        else:  # forced targets are chosen from the prediction first
            with Timer(device) as t:
                pred = session.predict()
            stages["predict"] = t.seconds
            targets = choose_targets(pred.class_map, k, model.num_classes)
            with Timer(device) as t:
                cam = session.gradcam(targets)
            stages["gradcam"] = t.seconds
        with Timer(device) as t:
            segments = make_segments(pred.class_map, "class")
            sweep = session.sweep(segments, baseline="zero")
            fa_maps = {c: sweep.attribution_map(c) for c in targets}
        stages["ablation"] = t.seconds
    return {
        "seconds": total.seconds,
        "stages": stages,
        "targets": targets,
        "segments": segments.count,
        "forward_calls": counter.calls,
        "images_forwarded": counter.images,
        "session_forward_passes": session.forward_passes,
        "backward_passes": cam.backward_passes,
        "sweep_chunk": sweep.chunk_size,
        "sweep_seconds": sweep.seconds,
        "sweep_batches": list(sweep.batches),
        "session": session,
        "arrays": (cam.raw, cam.upsampled, fa_maps),
    }


def time_bare_forwards(session, chunks: list[int], device: torch.device, repeat: int) -> float:
    """Median seconds of the sweep's images as bare forward passes: the same batch sizes,
    the same precision and layout, no masks, scores, maps or copies to the CPU."""
    times = []
    for _ in range(repeat):
        batches = [session.input.expand(k, -1, -1, -1).contiguous() for k in chunks]
        with Timer(device) as t, torch.inference_mode(), session.numerics():
            for batch in batches:
                session.model.logits(session.layout(batch))
        times.append(t.seconds)
    return float(np.median(times))


_peak_before_resets = [0]


def track_cuda_peak_across_resets() -> None:
    """The engine resets CUDA's peak-memory counter to measure one image's pass (sizing
    its sweep chunks); keep the peak seen before each reset so the run's peak is whole."""
    original = torch.cuda.reset_peak_memory_stats

    def reset(device=None):
        _peak_before_resets[0] = max(_peak_before_resets[0], torch.cuda.max_memory_allocated(device))
        original(device)

    torch.cuda.reset_peak_memory_stats = reset


def cuda_run_peak(device: torch.device) -> float:
    """Peak allocated bytes since the benchmark's own reset, in MiB."""
    return max(_peak_before_resets[0], torch.cuda.max_memory_allocated(device)) / 2**20


def run_variant(args: argparse.Namespace) -> dict:
    """One variant, --repeat times, in this (fresh) process."""
    from segexplorer.engine.devices import resolve_device
    from segexplorer.engine.image import load_image, preprocess
    from segexplorer.engine.models import get_architecture, load_model

    device = resolve_device(args.device)
    image = preprocess(load_image(args.image), args.size)
    layer_path = args.layer or get_architecture(args.model).default_layer
    is_seed = args.variant.startswith("seed")
    precision = "bf16" if args.variant == "fast" else "fp32"
    if device.type == "cuda":
        # seed: strict fp32 like the engine; seed_tf32: PyTorch's defaults (the engine
        # switches TF32 off around its own calls in fp32 and leaves it alone in fast mode)
        torch.backends.cudnn.allow_tf32 = args.variant != "seed"
    if is_seed:
        module, model_note = seed_module(args.model, args.weights, device)
        model = None
    else:
        model = load_model(args.model, args.weights, device)
        module, model_note = model.module, (f"engine load_model({args.model!r}, "
                                            f"{args.weights!r}), {precision}")
    if device.type == "cuda":
        model_note += (f"; cuDNN TF32 {'on' if torch.backends.cudnn.allow_tf32 else 'off'}"
                       f" in the process, benchmark={torch.backends.cudnn.benchmark}")
    counter = ForwardCounter(module)
    if device.type == "cuda":
        track_cuda_peak_across_resets()
    with torch.inference_mode():
        for _ in range(args.warmup):  # first-call costs (allocator, kernels) out of the timing
            module(image.tensor.to(device))
    if device.type == "cuda":  # cuDNN autotunes each new shape: one whole untimed run each
        for _ in range(args.warmup):
            if is_seed:
                run_seed_once(module, image, device, layer_path, args.classes, counter)
            else:
                run_engine_once(model, image, device, args.classes, counter, precision)
    counter.reset()
    gc.collect()
    rss_before = current_rss_mib()
    cuda_base = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    runs = []
    window_peaks = []
    cuda_peaks = []
    for _ in range(args.repeat):
        gc.collect()
        counter.reset()
        can_window = reset_peak_rss()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            _peak_before_resets[0] = 0
        if is_seed:
            run = run_seed_once(module, image, device, layer_path, args.classes, counter)
        else:
            run = run_engine_once(model, image, device, args.classes, counter, precision)
        window_peaks.append(window_peak_rss_mib() if can_window else None)
        if device.type == "cuda":
            cuda_peaks.append(cuda_run_peak(device))
        runs.append(run)
    last = runs[-1]
    raw, up, fa_maps = last.pop("arrays")
    for run in runs[:-1]:
        run.pop("arrays")
    bare = None
    if not is_seed:
        session = last["session"]
        chunks = last["sweep_batches"]
        bare = {"chunks": chunks, "seconds": time_bare_forwards(session, chunks, device,
                                                                 args.repeat),
                "sweep_seconds_median": float(np.median([r["sweep_seconds"] for r in runs]))}
    for run in runs:
        run.pop("session", None)
    if args.arrays:
        np.savez(args.arrays, **{f"raw_{c}": v for c, v in raw.items()},
                 **{f"up_{c}": v for c, v in up.items()},
                 **{f"fa_{c}": v for c, v in fa_maps.items()})
    if args.profile:
        profile_once(args, module, model, image, device, layer_path, counter)
    seconds = [r["seconds"] for r in runs]
    peaks = [p for p in window_peaks if p is not None]
    return {
        "variant": args.variant,
        "model_note": model_note,
        "layer": layer_path,
        "working_shape": list(image.shape),
        "original_size": list(image.original_size),
        "seconds_all": seconds,
        "seconds_median": float(np.median(seconds)),
        "seconds_min": float(np.min(seconds)),
        "stages": last["stages"],
        "targets": last["targets"],
        "segments": last["segments"],
        "forward_calls": last["forward_calls"],
        "images_forwarded": last["images_forwarded"],
        "session_forward_passes": last.get("session_forward_passes"),
        "backward_passes": last["backward_passes"],
        "sweep_chunk": last.get("sweep_chunk"),
        "sweep_bare_forwards": bare,
        "precision": precision,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "peak_rss_during_work_mib": max(peaks) if peaks else None,
        "cuda_base_mib": None if cuda_base is None else cuda_base / 2**20,
        "cuda_peak_mib": max(cuda_peaks) if cuda_peaks else None,
        "machine": machine_info(device),
    }


def profile_once(args, module, model, image, device, layer_path, counter) -> None:
    """One extra, untimed run under torch.profiler; the top operators go to stderr."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        if args.variant.startswith("seed"):
            run_seed_once(module, image, device, layer_path, args.classes, counter)
        else:
            run_engine_once(model, image, device, args.classes, counter,
                            "bf16" if args.variant == "fast" else "fp32")
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"--- torch.profiler, variant {args.variant} (one untimed run) ---", file=sys.stderr)
    print(prof.key_averages().table(sort_by=sort, row_limit=args.profile), file=sys.stderr)


# ---------------------------------------------------------------------- the parent


def child_command(args: argparse.Namespace, variant: str, arrays: Path) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", variant,
           "--arrays", str(arrays), "--image", args.image, "--model", args.model,
           "--weights", args.weights, "--size", str(args.size), "--device", args.device,
           "--repeat", str(args.repeat), "--warmup", str(args.warmup)]
    if args.classes is not None:
        cmd += ["--classes", str(args.classes)]
    if args.layer:
        cmd += ["--layer", args.layer]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.profile:
        cmd += ["--profile", str(args.profile)]
    return cmd


def run_child(args: argparse.Namespace, variant: str, arrays: Path) -> dict:
    proc = subprocess.run(child_command(args, variant, arrays), stdout=subprocess.PIPE,
                          text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        sys.stdout.write(proc.stdout)
        raise SystemExit(f"The {variant} run failed (exit {proc.returncode}).")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def compare_maps(seed_file: Path, engine_file: Path, targets: list[int]) -> dict:
    seed = np.load(seed_file)
    engine = np.load(engine_file)
    out = {}
    for kind, label in (("raw", "Grad-CAM (layer resolution)"),
                        ("up", "Grad-CAM (upsampled)"), ("fa", "feature ablation")):
        worst_abs, worst_rel, shapes_ok = 0.0, 0.0, True
        for c in targets:
            a = seed[f"{kind}_{c}"].astype(np.float64)
            b = engine[f"{kind}_{c}"].astype(np.float64)
            if a.shape != b.shape:
                shapes_ok = False
                continue
            diff = float(np.max(np.abs(a - b))) if a.size else 0.0
            scale = float(np.max(np.abs(a))) if a.size else 0.0
            worst_abs = max(worst_abs, diff)
            worst_rel = max(worst_rel, diff / scale if scale > 0 else diff)
        out[kind] = {"label": label, "max_abs_diff": worst_abs, "max_rel_diff": worst_rel,
                     "shapes_match": shapes_ok,
                     "match": shapes_ok and worst_rel <= RTOL}
    return out


def mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} MiB"


def rss_increase(result: dict) -> float | None:
    peak, before = result["peak_rss_during_work_mib"], result["rss_before_mib"]
    return None if peak is None or before is None else peak - before


def ratio_text(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None or b <= 0 else f"{a / b:.2f}x"


def report(args: argparse.Namespace, results: dict, diffs: dict) -> str:
    names = list(results)
    seed = results["seed"]
    h, w = seed["working_shape"]
    ow, oh = seed["original_size"]

    def row(label, value, ratio=None):
        cells = [value(results[v]) for v in names]
        if ratio is not None:  # seed / variant, for each non-seed variant
            cells += [ratio(seed, results[v]) for v in names if v != "seed"]
        return (label, cells)

    def speedup(a, b):
        return f"{a['seconds_median'] / b['seconds_median']:.2f}x"

    def images_ratio(a, b):
        return f"{a['images_forwarded'] / max(1, b['images_forwarded']):.2f}x"

    def cuda_ratio(a, b):
        return ratio_text(a["cuda_peak_mib"], b["cuda_peak_mib"])

    rows = [
        row("wall time (median)", lambda r: fmt_s(r["seconds_median"]), speedup),
        row("  initial forward / predict", lambda r: fmt_s(r["stages"]["predict"])),
        row("  Grad-CAM, all targets", lambda r: fmt_s(r["stages"]["gradcam"])),
        row("  feature ablation, all targets", lambda r: fmt_s(r["stages"]["ablation"])),
        row("forward calls (counted)", lambda r: str(r["forward_calls"])),
        row("images through the model", lambda r: str(r["images_forwarded"]), images_ratio),
        row("backward passes", lambda r: str(r["backward_passes"])),
        row("RSS after load + warm-up", lambda r: mib(r["rss_before_mib"])),
        row("peak RSS during the work", lambda r: mib(r["peak_rss_during_work_mib"])),
        row("  increase over RSS after load", lambda r: mib(rss_increase(r))),
        row("peak RSS of the process", lambda r: mib(r["peak_rss_mib"])),
    ]
    if seed["cuda_peak_mib"] is not None:
        rows += [
            row("CUDA allocated before work", lambda r: mib(r["cuda_base_mib"])),
            row("CUDA max allocated", lambda r: mib(r["cuda_peak_mib"]), cuda_ratio),
        ]
    headers = [LABELS[v] for v in names] + [f"seed/{v}" for v in names if v != "seed"]
    width = max(len(r[0]) for r in rows) + 2
    col = max(14, *(len(x) + 2 for x in headers))
    lines = [
        "SegExplorer benchmark: every target class, seed's Captum calls vs the engine",
        machine_header(seed["machine"]),
        f"image:   {args.image} ({ow} x {oh} -> working {w} x {h}, --size {args.size})",
        f"model:   {args.model}, weights {args.weights}; Grad-CAM layer {seed['layer']}",
    ]
    lines += [f"{v + ':':9}{results[v]['model_note']}" for v in names]
    lines += [
        f"targets: {len(seed['targets'])} {seed['targets']}"
        + ("" if args.classes is None else f" (--classes {args.classes})")
        + f"; class segments: {seed['segments']}; repeats {args.repeat}, warm-up {args.warmup}",
        "",
        f"{'':{width}}" + "".join(f"{x:>{col}}" for x in headers),
    ]
    for label, cells in rows:
        lines.append(f"{label:{width}}" + "".join(f"{c or '':>{col}}" for c in cells))
    lines.append("")
    for v in names:
        if v == "seed":
            continue
        lines.append(f"seed / {LABELS[v]} wall time: {speedup(seed, results[v])} "
                     f"(medians; runs: seed "
                     f"{[round(x, 3) for x in seed['seconds_all']]} s, {v} "
                     f"{[round(x, 3) for x in results[v]['seconds_all']]} s)")
    for v in names:
        bare = results[v].get("sweep_bare_forwards")
        if bare:
            lines.append(
                f"{LABELS[v]} sweep: {fmt_s(bare['sweep_seconds_median'])} vs "
                f"{fmt_s(bare['seconds'])} for the same images as bare forward passes "
                f"(batches {bare['chunks']}): "
                f"{bare['sweep_seconds_median'] / max(1e-12, bare['seconds']):.2f}x")
    for v, per_kind in diffs.items():
        if per_kind is None:
            lines.append(f"{LABELS[v]}: no target in common with the seed's, not compared")
            continue
        if results[v]["targets"] != seed["targets"]:
            lines.append(f"{LABELS[v]}: targets {results[v]['targets']} (seed's "
                         f"{seed['targets']}): the shared ones compared")
        for d in per_kind.values():
            if v == "engine":
                verdict = ": match" if d["match"] else ": MISMATCH"
            else:
                verdict = " (different arithmetic: reported, not required to match)"
            lines.append(f"{LABELS[v]:20} {d['label']:28} max |diff| {d['max_abs_diff']:.3g}"
                         f" (relative {d['max_rel_diff']:.3g}){verdict}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default=None, help="image path (default: skimage's motorcycle_left.png)")
    p.add_argument("--model", default="fcn_resnet101")
    p.add_argument("--weights", default="untrained", help="untrained, default or a file path")
    p.add_argument("--size", type=int, default=640, help="working size (the seed's Resize)")
    p.add_argument("--classes", type=int, default=None, metavar="K",
                   help="exactly K targets: the K largest predicted classes, or classes "
                        "0..K-1 if fewer are predicted (default: every predicted class)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--layer", default=None, help="Grad-CAM layer (default: the model's)")
    p.add_argument("--repeat", type=int, default=1, help="timed runs per variant")
    p.add_argument("--warmup", type=int, default=1, help="untimed forward passes first")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after the timed runs, one untimed run under torch.profiler: top N ops")
    p.add_argument("--fast", action="store_true",
                   help="also run the engine in fast mode (bf16 autocast)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the results here")
    p.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--arrays", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be >= 1 and --warmup >= 0")
    args.image = args.image or default_image()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.variant:  # child: one variant, one JSON line on stdout
        result = run_variant(args)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    started = time.time()
    from segexplorer.engine.devices import resolve_device

    on_cuda = resolve_device(args.device).type == "cuda"
    variants = [v for v in VARIANTS
                if (v != "seed_tf32" or on_cuda) and (v != "fast" or args.fast)]
    with tempfile.TemporaryDirectory(prefix="segexplorer-bench-") as tmp:
        files = {v: Path(tmp) / f"{v}.npz" for v in variants}
        results = {}
        for variant in variants:
            print(f"running {variant} ...", file=sys.stderr, flush=True)
            results[variant] = run_child(args, variant, files[variant])
        targets = results["seed"]["targets"]
        # a variant of other arithmetic may predict other classes: compare the shared ones
        diffs = {v: (compare_maps(files["seed"], files[v],
                                  [c for c in targets if c in results[v]["targets"]])
                     if set(results[v]["targets"]) & set(targets) else None)
                 for v in variants if v != "seed"}
    print(report(args, results, diffs))
    ok = (results["engine"]["targets"] == results["seed"]["targets"]
          and all(d["match"] for d in diffs["engine"].values()))
    if args.json:
        payload = {
            "benchmark": "all_classes",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "args": {k: v for k, v in vars(args).items() if k not in ("variant", "arrays")},
            **results,
            "ratios_seed_over": {v: results["seed"]["seconds_median"]
                                 / results[v]["seconds_median"]
                                 for v in variants if v != "seed"},
            "diffs": diffs,
            "same_numbers": ok,
        }
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2))
        print(f"wrote {out}")
    if not ok:
        print("the seed and the engine do NOT give the same numbers (see above)", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
