"""Threads or processes for the batch's writers? images/s of the model alone, of the model
writing each image's files itself (the batch before its pipeline), and of the model with
writer threads or writer processes behind it, in one process and one run.

The model (loaded once) explains the same images in every variant; the writers render
and encode ``explain``'s files (``export.bundle.explain_files``) and write them, each
atomically, into a fresh folder per image, as the batch does. Writer processes are
started (spawn) and warmed up before the clock starts; each explained image is pickled
to them (what a process pool costs that threads do not). At most ``workers + 1`` images
are in flight in both, as in ``batch/pipeline.py``.

    python benchmarks/bench_batch_writers.py                   # lraspp, 320 px, 20 images
    python benchmarks/bench_batch_writers.py --variants engine,serial,threads:1,processes:1

Nothing asserts a timing; each variant's ratio is against the model alone in the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from bench_batch import make_images
from bench_common import machine_info


def write_files(analysed: Any, outputs: str, root: str) -> int:
    """A writer (thread or process): the image's files into a fresh folder; their bytes."""
    from segexplorer.export.atomic import write_bytes
    from segexplorer.export.bundle import explain_files

    if analysed.result is None:
        return 0
    folder = Path(root) / uuid.uuid4().hex
    folder.mkdir(parents=True)
    total = 0
    for name, data in explain_files(analysed.result, outputs):
        write_bytes(folder / name, data)
        total += len(data)
    return total


def warm(_: int) -> int:
    """Imports a writer process needs, before the clock starts."""
    import segexplorer.export.bundle  # noqa: F401

    return os.getpid()


def through_processes(workers: int, explain: Callable[[Any], Any], items: list[Any],
                      outputs: str, root: str) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(warm, range(workers)))
        start = time.perf_counter()
        in_flight: set[Future[int]] = set()
        for item in items:
            in_flight.add(pool.submit(write_files, explain(item), outputs, root))
            while len(in_flight) > workers:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
        for future in in_flight:
            future.result()
        through_processes.seconds = time.perf_counter() - start  # type: ignore[attr-defined]


def png_levels(analyser: Any, prepared: list[Any], levels: list[int]
               ) -> dict[str, dict[str, float]]:
    """explain's PNGs for every image (drawn once), encoded at each zlib level: seconds
    and bytes, against the first level."""
    from segexplorer.export.bundle import heat_map_pictures
    from segexplorer.export.files import png_bytes
    from segexplorer.render import decode_segmap

    pictures = []
    for p in prepared:
        result = analyser.analyse(p).result
        if result is None:
            continue
        pred = result.prediction
        pictures.append(decode_segmap(pred.class_map, pred.colors))
        pictures.extend(draw()[0] for _, draw in heat_map_pictures(result))
    out: dict[str, dict[str, float]] = {}
    for level in levels:
        start = time.perf_counter()
        size = sum(len(png_bytes(picture, level)) for picture in pictures)
        out[f"png_level_{level}"] = {"seconds": time.perf_counter() - start, "bytes": size}
    base = out[f"png_level_{levels[0]}"]
    for level in levels:
        r = out[f"png_level_{level}"]
        print(f"PNG level {level}: {len(pictures)} PNGs in {r['seconds']:.2f} s "
              f"({1000 * r['seconds'] / len(pictures):.1f} ms each), {r['bytes'] / 2**20:.1f} MiB"
              f"; against level {levels[0]}: {base['seconds'] / r['seconds']:.2f}x faster, "
              f"{r['bytes'] / base['bytes']:.2f}x the bytes", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--side", type=int, default=480)
    parser.add_argument("--model", default="lraspp_mobilenet_v3_large")
    parser.add_argument("--weights", default="untrained")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--methods", default="gradcam,activation,ablation")
    parser.add_argument("--outputs", default="full")
    parser.add_argument("--variants",
                        default="engine,serial,threads:1,threads:2,processes:1,processes:2")
    parser.add_argument("--png-levels", default="6,1",
                        help="also time explain's PNGs encoded at these zlib levels")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import torch

    from segexplorer.batch.analyse import ImageAnalyser
    from segexplorer.batch.inputs import list_items, resolve_input
    from segexplorer.batch.pipeline import WritePool
    from segexplorer.engine.analysis import ExplainRequest

    info = machine_info(torch.device(args.device if args.device != "auto" else "cpu"))
    print("machine:", json.dumps(info))
    work = Path(tempfile.mkdtemp(prefix="bench_writers_"))
    make_images(work / "images", args.images, args.side)
    request = ExplainRequest(image="", model=args.model, weights=args.weights,
                             device=args.device, size=args.size,
                             methods=tuple(args.methods.split(",")))
    analyser = ImageAnalyser(request, outputs=args.outputs)
    items = list_items(resolve_input(str(work / "images")))
    prepared = [analyser.prepare(item) for item in items]  # decoding: not measured here
    analyser.analyse(prepared[0])  # warm-up (first-call costs)
    one = analyser.analyse(prepared[0])
    print(f"{len(items)} images ({args.side} px), {args.model} [{args.weights}] at "
          f"{args.size} px on {args.device}, methods {args.methods}, outputs {args.outputs}; "
          f"one explained image pickles to {len(pickle.dumps(one, 5)) / 2**20:.1f} MiB")
    results: dict[str, dict[str, float]] = {}
    if args.png_levels:
        results.update(png_levels(analyser, prepared, [int(v) for v in
                                                       args.png_levels.split(",")]))
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        root = work / "out" / variant.replace(":", "_")
        root.mkdir(parents=True)
        kind, _, count = variant.partition(":")
        workers = int(count or 1)
        start = time.perf_counter()
        if kind == "engine":
            for p in prepared:
                analyser.analyse(p)
        elif kind == "serial":
            for p in prepared:
                write_files(analyser.analyse(p), args.outputs, str(root))
        elif kind == "threads":
            with WritePool(lambda a, r=str(root): write_files(a, args.outputs, r),
                           lambda _n: None, workers) as pool:
                for p in prepared:
                    pool.submit(analyser.analyse(p))
        elif kind == "processes":
            through_processes(workers, analyser.analyse, prepared, args.outputs, str(root))
        else:
            raise SystemExit(f"unknown variant {variant}")
        seconds = time.perf_counter() - start
        if kind == "processes":  # the clock of the pool itself (its start-up excluded)
            seconds = through_processes.seconds  # type: ignore[attr-defined]
        rate = len(prepared) / seconds
        results[variant] = {"seconds": seconds, "images_per_second": rate}
        base = results.get("engine", {}).get("images_per_second")
        ratio = f"  {rate / base:5.2f}x the model alone" if base else ""
        print(f"{variant:12} {seconds:7.2f} s  {rate:6.2f} images/s{ratio}", flush=True)
    print("load average after:", [round(v, 2) for v in os.getloadavg()])
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "args": vars(args),
                                               "results": results}, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
