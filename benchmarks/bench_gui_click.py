"""Click-to-shown latency in the real window (ablate mode), cached vs uncached.

bench_click.py times the engine and the render; this times what the window adds on top:
a mouse click on the canvas (Qt's event dispatch) until the canvas, the outline and the
ablation panel (thumbnails, score chart, history) are updated and painted. The window
runs offscreen unless there is a display.

* cached click: one segment after the ablation sweep, answered on the main thread from
  the sweep (no forward pass, no job);
* uncached click: the same segment with another baseline (the sweep cannot answer it):
  one forward pass in a worker, then the same drawing.

The baseline, measured in the same run on the same session: the engine call and the
render that bench_click.py times (Session.ablate, decode_segmap, changed_pixels_map).

The history is emptied before each click, so that no click is answered from it.
Median and 95th percentile over --clicks clicks of each kind, and the main thread's CPU
time per click ("GUI CPU": the window's own work, which other processes on a shared
machine move far less than the wall-clock time). No timing is asserted.

    python benchmarks/bench_gui_click.py --models lraspp_mobilenet_v3_large --size 640
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import (
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


def summarize(values: list[float]) -> dict:
    return {"median_s": percentile(values, 50), "p95_s": percentile(values, 95),
            "min_s": float(np.min(values)), "max_s": float(np.max(values)), "n": len(values)}


def bench_model(name: str, args: argparse.Namespace, app) -> dict:
    from PySide6.QtCore import QEventLoop, QSettings, Qt
    from PySide6.QtTest import QTest

    from segexplorer.gui.app import wait_until
    from segexplorer.gui.document.choices import ModelChoice
    from segexplorer.gui.main_window import MainWindow

    settings = QSettings(str(Path(args.settings_dir) / f"{name}.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings, interactive=False, num_threads=args.threads or None)
    doc = window.document
    doc.model.set(ModelChoice(name, args.weights, args.device, args.size))
    doc.analysis.update(segments=args.segments, baseline="zero")
    window.resize(1440, 900)
    window.show()
    doc.image.open(args.image)
    if not wait_until(lambda: doc.store.prediction is not None, 1800):
        raise SystemExit(f"{name}: no prediction ({window.status.last_error})")
    wait_until(lambda: not window.runner.is_busy(), 1800)
    ctrl = doc.ablation
    ctrl.set_active(True)
    start = time.perf_counter()
    ctrl.precompute_sweep()
    if not wait_until(lambda: doc.store.sweep_for(args.segments, "zero") is not None, 1800):
        raise SystemExit(f"{name}: the sweep did not finish ({window.status.last_error})")
    sweep_s = time.perf_counter() - start
    wait_until(lambda: not window.runner.is_busy(), 600)
    segments = ctrl.segments_for(args.segments)
    pred = doc.store.prediction
    points = []
    for info in segments.info:  # a pixel of each segment, to click on
        ys, xs = np.nonzero(segments.ids == info.id)
        i = len(xs) // 2
        points.append((info.id, int(xs[i]), int(ys[i])))
    cycle = itertools.cycle(points)
    viewport = window.canvas.viewport()

    def click(baseline: str) -> tuple[float, bool, float]:
        seg_id, x, y = next(cycle)
        ctrl.reset()
        ctrl.forget_history()  # so that no click is answered from it
        if doc.analysis.baseline != baseline:
            doc.analysis.baseline = baseline
        wait_until(lambda: not window.runner.is_busy(), 600)
        app.processEvents()
        pos = window.canvas.image_to_widget(x, y)
        t0, cpu0 = time.perf_counter(), time.thread_time()
        QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         pos)
        shown = wait(lambda: ctrl.shown is not None and ctrl.shown.selection.ids == (seg_id,),
                     600)
        app.processEvents()  # paint
        elapsed, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
        if not shown:
            raise SystemExit(f"{name}: a click was never shown ({window.status.last_error})")
        return elapsed, ctrl.shown.outcome.from_cache, cpu

    def wait(predicate, timeout_s: float) -> bool:
        # finer than wait_until's 20 ms steps: the worker's result is a posted event
        deadline = time.perf_counter() + timeout_s
        while not predicate():
            if time.perf_counter() > deadline:
                return False
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 1)
            time.sleep(0.0005)
        return True

    sweep = doc.store.sweep_for(args.segments, "zero")

    def engine_click(baseline: str) -> float:
        from segexplorer.render import changed_pixels_map, decode_segmap

        seg_id, _x, _y = next(cycle)
        t0 = time.perf_counter()
        outcome = doc.store.session.ablate(segments, [seg_id], baseline=baseline,
                                           sweep=sweep)
        decode_segmap(outcome.class_map_after)
        changed_pixels_map(pred.class_map, outcome.class_map_after, pred.image)
        return time.perf_counter() - t0

    results = {}
    for kind, baseline, want_cached in (("cached", "zero", True),
                                        ("uncached", "black", False)):
        threads = window.runner.started_count
        passes = doc.store.session.forward_passes
        for _ in range(args.warmup):
            click(baseline)
        times, cpu_times = [], []
        for _ in range(args.clicks):
            seconds, cached, cpu = click(baseline)
            cpu_times.append(cpu)
            if cached != want_cached:
                raise SystemExit(f"a {kind} click was {'not ' if want_cached else ''}"
                                 "answered from the sweep: the benchmark measures the wrong "
                                 "thing")
            times.append(seconds)
        results[kind] = {"total": summarize(times), "main_thread_cpu": summarize(cpu_times),
                         "threads_started": window.runner.started_count - threads,
                         "forward_passes": doc.store.session.forward_passes - passes}
        wait_until(lambda: not window.runner.is_busy(), 600)
        engine_click(baseline)  # warm-up
        results[kind]["engine"] = summarize([engine_click(baseline)
                                             for _ in range(args.clicks)])
    h, w = pred.shape
    window.close()
    return {"model": name, "weights": args.weights, "working_shape": [h, w],
            "segments": segments.count, "segments_kind": args.segments, "sweep_s": sweep_s,
            **results}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def report_model(r: dict) -> str:
    h, w = r["working_shape"]
    c, u = r["cached"], r["uncached"]
    lines = [
        f"{r['model']} ({r['weights']}), working {w} x {h}, {r['segments']} "
        f"{r['segments_kind']} segments; sweep {fmt_s(r['sweep_s'])} (paid once)",
        f"  {'':30}{'median ms':>12}{'p95 ms':>12}{'GUI CPU ms':>12}{'threads':>9}"
        f"{'forwards':>10}{'engine ms':>12}{'window / engine':>17}",
    ]
    for label, d in (("cached click (from the sweep)", c),
                     ("uncached click (1 forward)", u)):
        engine = d["engine"]["median_s"]
        lines.append(f"  {label:30}{ms(d['total']['median_s']):>12}"
                     f"{ms(d['total']['p95_s']):>12}"
                     f"{ms(d['main_thread_cpu']['median_s']):>12}{d['threads_started']:>9}"
                     f"{d['forward_passes']:>10}{ms(engine):>12}"
                     f"{d['total']['median_s'] / max(1e-12, engine):>16.2f}x")
    ratio = u["total"]["median_s"] / max(1e-12, c["total"]["median_s"])
    lines.append(f"  uncached / cached (median): {ratio:.1f}x")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = click_arg_parser(__doc__.split("\n\n")[0], DEFAULT_MODELS, "cpu")
    args = p.parse_args(argv)
    if args.clicks < 1 or args.warmup < 0:
        p.error("--clicks must be >= 1, --warmup >= 0")
    args.image = args.image or default_image()
    return args


def main(argv: list[str] | None = None) -> int:
    import tempfile

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from segexplorer.gui.app import _application

    app, _created = _application(sys.argv[:1], offscreen=True)
    info = machine_info(torch.device(args.device))
    print("SegExplorer benchmark: click-to-shown latency in the window (ablate mode)")
    print(machine_header(info))
    print(f"image:   {args.image}; --size {args.size}; {args.clicks} clicks of each kind "
          f"after {args.warmup} warm-up; Qt platform {app.platformName()}")
    with tempfile.TemporaryDirectory() as tmp:
        args.settings_dir = tmp
        results = run_models(args, lambda name: bench_model(name, args, app), report_model)
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "settings_dir"}
        write_results(args.json, "gui_click", settings, info, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
