"""images/s of ``segexplorer batch`` against its own engine alone (the same images, the
same model and options, nothing rendered or written), against a loop of ``segexplorer
explain`` processes, and of ``batch --engine ray``, in one run; and the batch's peak memory
on few and on many images.

Each variant is a fresh process, timed wall clock from start to exit, with its peak RSS
(the process's own, from the OS). The engine-only variant loads the model, then runs the
batch's own model stage (``ImageAnalyser.analyse``, decoding ahead in a thread, as the
batch does) on every image and writes nothing; its rate is measured from the model's
loading on, like the batch's own rate (its last line), so **batch / engine-only** says
how much of the model's speed the batch keeps. The loop pays Python's and torch's start
and the model's loading once per image. The outputs of the variants are compared (the
same images explained, the same class maps).

    python benchmarks/bench_batch.py                          # engine-only and batch
    python benchmarks/bench_batch.py --variants engine,batch,loop,ray
    python benchmarks/bench_batch.py --model fcn_resnet101 --size 640 --device cuda --fast
    python benchmarks/bench_batch.py --memory 20,200          # peak RSS, few vs many images
    python benchmarks/bench_batch.py --same-shape --variants batch,together  # images per pass

``together`` is the batch with ``--images-per-pass`` (``--together N``, default 4): images
of one shape share the prediction's and Grad-CAM's pass; ``--same-shape`` makes every image
the same size so that they can.

Nothing asserts a timing; the ratios are against baselines measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_common import machine_info
from PIL import Image

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
          "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "camera.png", "brick.png")


def make_images(folder: Path, count: int, side: int, same_shape: bool = False) -> list[Path]:
    """``count`` different crops of scikit-image's photos, ``side`` px on the longer side
    (``same_shape``: all ``side`` x 3/4 ``side``)."""
    import skimage

    data = Path(skimage.__file__).parent / "data"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        with Image.open(data / PHOTOS[i % len(PHOTOS)]) as image:
            rgb = image.convert("RGB")
        w, h = rgb.size
        shift = (i // len(PHOTOS)) * 17 % max(min(w, h) // 4, 1)  # small photos: wrap
        crop = rgb.crop((shift, shift, w - shift, h - shift))
        if same_shape:
            crop = crop.resize((side, side * 3 // 4))
        else:
            crop.thumbnail((side, side))
        path = folder / f"{i:02d}_{Path(PHOTOS[i % len(PHOTOS)]).stem}.png"
        crop.save(path)
        paths.append(path)
    return paths


def copies(folder: Path, distinct: list[Path], count: int) -> Path:
    """``count`` images in ``folder``: copies of ``distinct``, over and over."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        source = distinct[i % len(distinct)]
        shutil.copyfile(source, folder / f"{i:05d}_{source.name}")
    return folder


def run(command: list[str]) -> tuple[float, str, float]:
    """Run ``command``: its wall seconds, its output, its peak RSS in MiB (the process's
    own, from the OS: ``wait4``)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True,
                                env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} ... failed:\n{text}")
    return seconds, text, usage.ru_maxrss / 1024  # Linux: KiB


def model_args(args: argparse.Namespace) -> list[str]:
    extra = ["--fast"] if args.fast else []
    return ["--model", args.model, "--weights", args.weights, "--device", args.device,
            "--size", str(args.size), "--methods", args.methods, *extra]


def batch_args(args: argparse.Namespace) -> list[str]:
    extra = ["--outputs", args.outputs]
    if args.writers:
        extra += ["--writers", str(args.writers)]
    if args.images_per_pass:
        extra += ["--images-per-pass", str(args.images_per_pass)]
    return extra


def engine_only(args: argparse.Namespace, folder: str) -> None:
    """The child process of the engine-only variant: the batch's model stage on every
    image of ``folder``, nothing written; prints its figures as JSON."""
    from segexplorer.batch.analyse import ImageAnalyser
    from segexplorer.batch.inputs import list_items, resolve_input
    from segexplorer.batch.options import DEFAULT_PREFETCH
    from segexplorer.batch.pipeline import groups, prefetched
    from segexplorer.engine.analysis import ExplainRequest

    request = ExplainRequest(image="", model=args.model, weights=args.weights,
                             device=args.device, size=args.size,
                             methods=tuple(args.methods.split(",")),
                             precision="bf16" if args.fast else "fp32")
    items = list_items(resolve_input(folder))
    analyser = ImageAnalyser(request, images_per_pass=args.images_per_pass)
    most = analyser.images_per_pass
    start = time.perf_counter()  # as the batch's clock: from the loaded model on
    errors = 0
    decoded = prefetched(items, analyser.prepare, max(DEFAULT_PREFETCH, most))
    for group in groups(decoded, most):  # as the batch does
        errors += sum(not a.ok for a in analyser.analyse_group(group))
    seconds = time.perf_counter() - start
    print(json.dumps({"images": len(items), "errors": errors, "seconds": seconds,
                      "images_per_second": len(items) / seconds}))


def gradcam_difference(work: Path) -> float:
    """The largest difference of every Grad-CAM map of 'together' from 'batch''s, relative
    to the largest magnitude of batch's map (the parity tests' measure)."""
    worst = 0.0
    for npz in sorted((work / "batch").rglob("attributions.npz")):
        theirs = np.load(npz)
        ours = np.load(work / "together" / npz.relative_to(work / "batch"))
        for key in theirs.files:
            if key.startswith("gradcam"):
                scale = max(float(np.abs(theirs[key]).max()), 1e-12)
                worst = max(worst, float(np.abs(ours[key] - theirs[key]).max()) / scale)
    return worst


def class_maps(folder: Path) -> dict[str, np.ndarray]:
    maps = {}
    for npz in sorted(folder.rglob("attributions.npz")):
        maps[npz.parent.name] = np.load(npz)["segmentation"]
    return maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--side", type=int, default=480, help="longer side of the test images")
    parser.add_argument("--model", default="lraspp_mobilenet_v3_large")
    parser.add_argument("--weights", default="untrained")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--methods", default="gradcam,activation,ablation")
    parser.add_argument("--fast", action="store_true", help="fast mode (bf16 autocast)")
    parser.add_argument("--outputs", default="full", help="the batch's --outputs")
    parser.add_argument("--writers", type=int, default=None, help="the batch's --writers")
    parser.add_argument("--images-per-pass", type=int, default=None,
                        help="the batch's and engine-only's --images-per-pass")
    parser.add_argument("--together", type=int, default=4,
                        help="--images-per-pass of the 'together' variant")
    parser.add_argument("--same-shape", action="store_true",
                        help="every image the same size (so that images can share a pass)")
    parser.add_argument("--variants", default="engine,batch",
                        help="any of engine (engine-only), batch, together (the batch with "
                             "--images-per-pass TOGETHER), loop, ray")
    parser.add_argument("--memory", metavar="FEW,MANY",
                        help="instead: the batch's peak RSS on FEW and on MANY images "
                             "(copies of the photos), e.g. 20,200")
    parser.add_argument("--engine-only-child", metavar="FOLDER", help=argparse.SUPPRESS)
    parser.add_argument("--ray-actors", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in every process (OMP_NUM_THREADS)")
    parser.add_argument("--keep", help="keep the outputs in this folder")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.engine_only_child:
        engine_only(args, args.engine_only_child)
        return
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info(torch.device(args.device if args.device != "auto" else "cpu"))
    print("machine:", json.dumps(info))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_batch_"))
    images = make_images(work / "images", args.images, args.side, args.same_shape)
    print(f"{len(images)} images ({args.side} px), {args.model} [{args.weights}] at "
          f"{args.size} px on {args.device}{' (fast mode)' if args.fast else ''}, methods "
          f"{args.methods}, outputs {args.outputs}")
    if args.memory:
        memory(args, work, images)
    else:
        results = throughput(args, work, images)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": info, "args": vars(args),
                                                   "results": results}, indent=2) + "\n")
    print("load average after:", [round(v, 2) for v in os.getloadavg()])
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def throughput(args: argparse.Namespace, work: Path, images: list[Path]) -> dict[str, dict]:
    py = [sys.executable, "-m", "segexplorer"]
    results: dict[str, dict] = {}
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for variant in variants:
        out = work / variant
        shutil.rmtree(out, ignore_errors=True)
        peak = 0.0
        if variant == "loop":
            start = time.perf_counter()
            for path in images:
                _, _, used = run([*py, "explain", str(path), *model_args(args), "--out",
                                  str(out / path.name), "-q"])
                peak = max(peak, used)
            seconds = time.perf_counter() - start
            rate_inside = None
        elif variant == "engine":
            seconds, text, peak = run([sys.executable, __file__, "--engine-only-child",
                                       str(work / "images"), *model_args(args)])
            rate_inside = json.loads(text.strip().splitlines()[-1])["images_per_second"]
        else:
            extra = ["--engine", "ray"] if variant == "ray" else []
            if variant == "ray" and args.ray_actors:
                extra += ["--actors", str(args.ray_actors)]
            if variant == "together":
                extra += ["--images-per-pass", str(args.together)]
            seconds, text, peak = run([*py, "batch", str(work / "images"), *model_args(args),
                                       *batch_args(args), *extra, "--out", str(out)])
            found = re.findall(r"([0-9.]+) images/s", text)
            rate_inside = float(found[-1]) if found else None
        results[variant] = {"seconds": seconds, "images_per_second": len(images) / seconds,
                            "rate_after_loading": rate_inside, "peak_rss_mib": peak}
        print(f"{variant:6} {seconds:8.1f} s  {len(images) / seconds:6.3f} images/s"
              + (f"  (once the model is loaded: {rate_inside:.3f} images/s)"
                 if rate_inside else "") + f"  peak RSS {peak:.0f} MiB", flush=True)
    if "loop" in results:
        base = results["loop"]["seconds"]
        for r in results.values():
            r["speedup_vs_loop"] = base / r["seconds"]
        print("speed-up against the loop of explain processes: " + ", ".join(
            f"{v} {r['speedup_vs_loop']:.2f}x" for v, r in results.items() if v != "loop"))
    if "batch" in results and "engine" in results:
        ratio = results["batch"]["rate_after_loading"] / results["engine"]["rate_after_loading"]
        results["batch"]["vs_engine_only"] = ratio
        print(f"batch / engine-only (images/s once the model is loaded): {ratio:.2f}x")
    if "batch" in results and "together" in results:
        ratio = results["together"]["rate_after_loading"] / results["batch"]["rate_after_loading"]
        results["together"]["vs_batch"] = ratio
        print(f"together ({args.together} images per pass) / batch (images/s once the model "
              f"is loaded): {ratio:.2f}x")
    if "batch" in results and "ray" in results:
        print(f"ray / local batch: {results['batch']['seconds'] / results['ray']['seconds']:.2f}x"
              " (above 1: Ray faster)")
    # the same results whichever way they were computed
    maps = {v: class_maps(work / v) for v in variants if v != "engine"}
    maps = {v: m for v, m in maps.items() if m}  # --outputs without the arrays: nothing
    names = list(maps)
    for v in names[1:]:
        same = maps[v].keys() == maps[names[0]].keys() and all(
            np.array_equal(maps[v][k], maps[names[0]][k]) for k in maps[names[0]])
        if v == "together" and "batch" in maps:
            print("together's Grad-CAM maps vs batch's, largest difference relative to the "
                  f"map's largest magnitude: {gradcam_difference(work):.2e}")
        print(f"class maps of {v} equal {names[0]}'s: {same}")
    return results


def memory(args: argparse.Namespace, work: Path, images: list[Path]) -> None:
    """The batch's peak RSS on FEW and on MANY images (copies of the same photos)."""
    py = [sys.executable, "-m", "segexplorer"]
    counts = [int(c) for c in args.memory.split(",")]
    peaks = {}
    for count in counts:
        folder = copies(work / f"copies_{count}", images, count)
        seconds, text, peak = run([*py, "batch", str(folder), *model_args(args),
                                   *batch_args(args), "--out", str(work / f"out_{count}")])
        found = re.findall(r"([0-9.]+) images/s", text)
        peaks[count] = peak
        print(f"{count:6d} images: {seconds:7.1f} s, {found[-1] if found else '?'} images/s, "
              f"peak RSS {peak:.0f} MiB", flush=True)
    few, many = counts[0], counts[-1]
    print(f"peak RSS, {many} images / {few} images: {peaks[many] / peaks[few]:.3f}x")


if __name__ == "__main__":
    main()
