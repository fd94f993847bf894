"""Launch-to-painted-window time of ``python -m segexplorer`` (issue 5: under 1.5 s on CPU).

Each run starts a fresh process with QT_QPA_PLATFORM=offscreen (unless a display is asked
for) and SEGEXPLORER_STARTUP_PROBE=1: the window then prints when it was first painted
and when torch had finished importing (in its startup worker), and quits. Times are
measured from just before the parent launches the process. Also timed, as the baseline
in the same run: a bare ``python -c "import torch, torchvision"`` (what the window used
to wait for before it could be shown).

    python benchmarks/bench_startup.py [--runs 5] [--image photo.jpg] [--display]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROBE = "SEGEXPLORER_STARTUP_PROBE"


def launch(image: str | None, display: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="segexplorer-bench-") as home:
        env = {**os.environ, PROBE: "1", "XDG_CONFIG_HOME": home}
        if not display:
            env["QT_QPA_PLATFORM"] = "offscreen"
        cmd = [sys.executable, "-m", "segexplorer"] + ([image] if image else [])
        started = time.time()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    times: dict[str, float] = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "startup-probe":
            times[parts[1]] = float(parts[2]) - started
            if parts[1] == "torch" and len(parts) > 3:
                times["import"] = float(parts[3])
    if "painted" not in times or "torch" not in times:
        raise SystemExit(f"no probe output (exit {done.returncode}):\n{done.stdout}\n"
                         f"{done.stderr}")
    return times


def bare_torch_import() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, torchvision"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--image", default=None, help="open this image at start-up")
    parser.add_argument("--display", action="store_true",
                        help="use the real display instead of the offscreen platform")
    args = parser.parse_args()

    launch(args.image, args.display)  # warm the file cache once; not counted
    runs = [launch(args.image, args.display) for _ in range(args.runs)]
    bare = [bare_torch_import() for _ in range(args.runs)]
    painted = statistics.median(r["painted"] for r in runs)
    loaded = statistics.median(r["torch"] for r in runs)
    imported = statistics.median(r["import"] for r in runs)
    bare_s = statistics.median(bare)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"platform {'display' if args.display else 'offscreen'}, {args.runs} runs "
          f"(median)")
    each = ", ".join(f"{r['painted']:.2f}" for r in runs)
    print(f"launch -> painted window      {painted:7.3f} s   (runs: {each})")
    print(f"launch -> torch loaded        {loaded:7.3f} s   (import in the worker "
          f"{imported:.2f} s)")
    print(f"bare 'import torch, torchvision' process {bare_s:7.3f} s")
    print(f"window painted {bare_s / painted:.1f}x sooner than torch alone could load")


if __name__ == "__main__":
    main()
