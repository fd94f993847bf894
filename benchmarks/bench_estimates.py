"""What the window's cost gate says against what the run takes, on this machine.

The window's own document (no Qt; jobs run on this thread by a ``QueueRunner``) opens
an image with a real architecture (untrained seeded weights: no download; the time does
not depend on the weights), reads the estimate the window shows before a costly run
(``Document.estimate`` for a method, ``EvaluationState.estimate`` for the Evaluate
panel: images, time, memory), presses Compute (or Run) and times the job. Printed per
run: the estimated and the measured seconds and their ratio, the images estimated and
counted, the memory line, the peak resident memory, and how the progress bar moved: the
number of distinct positions it took and the longest time it stood still, as a share of
the run (integrated gradients' bar must move during the run, not only at its end).

    python benchmarks/bench_estimates.py                          # fcn_resnet50, 128 px
    python benchmarks/bench_estimates.py --model fcn_resnet101 --size 128 --full

Nothing is asserted: the figures go in docs/performance.md with the machine and its load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from bench_common import (  # noqa: E402
    default_image,
    machine_header,
    machine_info,
    peak_rss_mib,
    reset_peak_rss,
    window_peak_rss_mib,
)

from segexplorer.engine.evaluation_plan import QUICK, EvaluationSettings  # noqa: E402
from segexplorer.gui.document import Document, QueueRunner  # noqa: E402
from segexplorer.gui.document.choices import ModelChoice  # noqa: E402
from segexplorer.gui.document.estimates import describe_run  # noqa: E402


class TimedProgress(list):
    """The runner's progress list, with the time of each report."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item) -> None:  # type: ignore[override]
        self.times.append(time.perf_counter())
        super().append(item)


def still_share(progress: TimedProgress, channel: str, start: float, end: float
                ) -> tuple[int, float]:
    """(distinct positions of the bar, the longest time it stood still / the run)."""
    marks = [(t, d / max(total, 1)) for t, (c, d, total, _m) in zip(progress.times, progress)
             if c == channel]
    positions = sorted({round(p, 6) for _t, p in marks})
    moved = [start] + [t for (t, p), (_t0, p0) in zip(marks[1:], marks[:-1]) if p > p0]
    moved.append(end)
    longest = max(b - a for a, b in zip(moved, moved[1:]))
    return len(positions), longest / max(end - start, 1e-9)


def run_one(doc: Document, runner: QueueRunner, what: str, start_job, channel: str,
            estimate: tuple[str, float | None, int]) -> dict:
    text, seconds, images = estimate
    progress = TimedProgress()
    runner.progress = progress
    reset_peak_rss()
    start = time.perf_counter()
    start_job()
    runner.run_until_idle()
    end = time.perf_counter()
    positions, still = still_share(progress, channel, start, end)
    took = end - start
    peak = window_peak_rss_mib() or peak_rss_mib()
    ratio = f"{took / seconds:.2f}" if seconds else "n/a"
    print(f"{what}\n  the window said: {text}\n  took {took:.1f} s (measured / estimated "
          f"{ratio}); peak RSS {peak:.0f} MiB; the bar took {positions} positions, stood "
          f"still at most {100 * still:.0f} % of the run")
    return {"what": what, "estimate": seconds, "took": took, "images": images,
            "positions": positions, "still": still}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="fcn_resnet50")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--image", default=None)
    parser.add_argument("--full", action="store_true",
                        help="also the full evaluation (minutes on a CPU)")
    parser.add_argument("--skip", default="", help="comma-separated: occlusion,ig,quick")
    args = parser.parse_args()
    device = torch.device("cpu")
    print(machine_header(machine_info(device)))
    runner = QueueRunner()
    doc = Document(runner, ModelChoice(args.model, "untrained", "cpu", args.size),
                   count_threads=False)
    failed: list = []
    doc.failed.connect(failed.append)
    doc.image.open(args.image or default_image())
    runner.run_until_idle()
    pred = doc.store.prediction
    assert pred is not None, failed
    print(f"{args.model} (untrained) at {args.size} px: working image "
          f"{pred.shape[1]} x {pred.shape[0]}, {len(pred.present_classes)} classes, "
          f"the prediction's pass {pred.seconds:.2f} s")
    doc.analysis.auto_run_seconds = 0.0  # every method waits for Compute: its cost shown
    skip = set(filter(None, args.skip.split(",")))
    rows = []
    for method, options in (("occlusion", {}), ("ig", {})):
        if method in skip:
            continue
        doc.analysis.update(method=method, **options)
        runner.run_until_idle()
        est = doc.estimate()
        assert est is not None
        rows.append(run_one(doc, runner, f"{method} ({est.cost.forward + est.cost.backward} "
                                         "images)", doc.compute, "method",
                            (est.describe(), est.seconds,
                             est.cost.forward + est.cost.backward)))
        maps = doc.store.method_for()
        assert maps is not None, failed
        print(f"  counted {maps.forward + maps.backward} images; seconds per inference "
              f"image in chunks: {doc.store.session.memory.seconds_per_image()}")
    evaluations = [("quick", QUICK)] if "quick" not in skip else []
    if args.full:
        evaluations.append(("full", EvaluationSettings()))
    doc.analysis.update(method="gradcam")
    runner.run_until_idle()
    for name, settings in evaluations:
        doc.evaluation.settings = settings
        estimate = doc.evaluation.estimate()
        assert estimate is not None
        cost, seconds = estimate
        rows.append(run_one(doc, runner, f"evaluate {name} ({', '.join(doc.evaluation.methods)})",
                            doc.evaluation.run, "evaluate",
                            (describe_run(cost.describe(), seconds, cost.memory,
                                          "at most about"), seconds,
                             cost.forward + cost.backward)))
        result = doc.evaluation.result()
        assert result is not None, failed
        print(f"  counted {sum(result.images.values())} images ({result.images})")
    print("\nsummary: " + "; ".join(
        f"{r['what'].split(' (')[0]} {r['took']:.0f} s / said "
        f"{r['estimate']:.0f} s" if r["estimate"] else r["what"] for r in rows))


if __name__ == "__main__":
    main()
