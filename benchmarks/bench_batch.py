"""images/s of ``segexplorer batch`` against a loop of ``segexplorer explain`` processes on
the same images, and of ``batch --engine ray`` on this machine, in one run.

Each variant is a fresh process (or, for the loop, one process per image), timed wall
clock from start to exit, as a user would time it: the loop pays Python's and torch's
start and the model's loading once per image, the batch once. The batch's own rate
(images/s once the model is loaded, from its last line) is printed too. The outputs of
the variants are compared (the same images explained, the same class maps).

    python benchmarks/bench_batch.py                          # 20 images, lraspp, 320 px
    python benchmarks/bench_batch.py --model fcn_resnet50 --size 480 --images 20
    python benchmarks/bench_batch.py --variants batch,ray --ray-actors 2 --json out.json

Nothing asserts a timing; the ratios are against the loop measured in the same run.
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


def make_images(folder: Path, count: int, side: int) -> list[Path]:
    """``count`` different crops of scikit-image's photos, ``side`` px on the longer side."""
    import skimage

    data = Path(skimage.__file__).parent / "data"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        with Image.open(data / PHOTOS[i % len(PHOTOS)]) as image:
            rgb = image.convert("RGB")
        w, h = rgb.size
        shift = (i // len(PHOTOS)) * 17
        crop = rgb.crop((shift, shift, w - shift, h - shift))
        crop.thumbnail((side, side))
        path = folder / f"{i:02d}_{Path(PHOTOS[i % len(PHOTOS)]).stem}.png"
        crop.save(path)
        paths.append(path)
    return paths


def run(command: list[str]) -> tuple[float, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} ... failed:\n{proc.stderr}")
    return seconds, proc.stdout + proc.stderr


def model_args(args: argparse.Namespace) -> list[str]:
    return ["--model", args.model, "--weights", args.weights, "--device", args.device,
            "--size", str(args.size), "--methods", args.methods]


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
    parser.add_argument("--variants", default="loop,batch,ray")
    parser.add_argument("--ray-actors", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in every process (OMP_NUM_THREADS)")
    parser.add_argument("--keep", help="keep the outputs in this folder")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info(torch.device(args.device if args.device != "auto" else "cpu"))
    print("machine:", json.dumps(info))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_batch_"))
    images = make_images(work / "images", args.images, args.side)
    print(f"{len(images)} images ({args.side} px), {args.model} [{args.weights}] at "
          f"{args.size} px on {args.device}, methods {args.methods}")
    py = [sys.executable, "-m", "segexplorer"]
    results: dict[str, dict] = {}
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for variant in variants:
        out = work / variant
        shutil.rmtree(out, ignore_errors=True)
        if variant == "loop":
            start = time.perf_counter()
            for path in images:
                run([*py, "explain", str(path), *model_args(args), "--out",
                     str(out / path.name), "-q"])
            seconds = time.perf_counter() - start
            rate_inside = None
        else:
            extra = ["--engine", "ray"] if variant == "ray" else []
            if variant == "ray" and args.ray_actors:
                extra += ["--actors", str(args.ray_actors)]
            seconds, text = run([*py, "batch", str(work / "images"), *model_args(args),
                                 *extra, "--out", str(out)])
            found = re.findall(r"([0-9.]+) images/s", text)
            rate_inside = float(found[-1]) if found else None
        results[variant] = {"seconds": seconds, "images_per_second": len(images) / seconds,
                            "rate_after_loading": rate_inside}
        print(f"{variant:6} {seconds:8.1f} s  {len(images) / seconds:6.3f} images/s"
              + (f"  (its own rate once the model is loaded: {rate_inside:.3f} images/s)"
                 if rate_inside else ""), flush=True)
    if "loop" in results:
        base = results["loop"]["seconds"]
        for r in results.values():
            r["speedup_vs_loop"] = base / r["seconds"]
        print("speed-up against the loop of explain processes: " + ", ".join(
            f"{v} {r['speedup_vs_loop']:.2f}x" for v, r in results.items() if v != "loop"))
    if "batch" in results and "ray" in results:
        print(f"ray / local batch: {results['batch']['seconds'] / results['ray']['seconds']:.2f}x"
              " (above 1: Ray faster)")
    # the same results whichever way they were computed
    maps = {v: class_maps(work / v) for v in variants}
    first = variants[0]
    for v in variants[1:]:
        same = maps[v].keys() == maps[first].keys() and all(
            np.array_equal(maps[v][k], maps[first][k]) for k in maps[first])
        print(f"class maps of {v} equal {first}'s: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "args": vars(args),
                                               "results": results}, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
