"""Launch-to-painted-window time of ``python -m segexplorer`` (issue 5: under 1.5 s on CPU);
with ``--cli``, the command line's start-up instead (issue 21).

Each run starts a fresh process with QT_QPA_PLATFORM=offscreen (unless a display is asked
for) and SEGEXPLORER_STARTUP_PROBE=1: the window then prints when it was first painted
and when torch had finished importing (in its startup worker), and quits. Times are
measured from just before the parent launches the process. Also timed, as the baseline
in the same run: a bare ``python -c "import torch, torchvision"`` (what the window used
to wait for before it could be shown).

    python benchmarks/bench_startup.py [--runs 5] [--image photo.jpg] [--display]

``--cli`` times whole commands, each a fresh process, wall clock and peak RSS (the
process's own, from the OS): ``segexplorer --version``, ``segexplorer batch --help``, a
typo refused (``explain --methods gradcm``), and a batch of one image (lraspp_mobilenet_v3_large,
untrained, 320 px, on the CPU: start-up, the model's loading, one image, the tables); the
baseline in the same run is a bare ``python -c "import torch, torchvision"``. Where the
1-image batch's import time goes: ``python -X importtime -m segexplorer batch ...`` (with
``SEGEXPLORER_DEBUG=1``, or the batch silences stderr).

    python benchmarks/bench_startup.py --cli [--runs 5]
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


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of ``command`` as a fresh process."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def cli(runs: int) -> None:
    import shutil
    from pathlib import Path

    import skimage

    photo = Path(skimage.__file__).parent / "data" / "astronaut.png"
    out = Path(tempfile.mkdtemp(prefix="segexplorer-bench-cli-"))
    py = [sys.executable, "-m", "segexplorer"]
    commands = {
        "segexplorer --version": [*py, "--version"],
        "segexplorer batch --help": [*py, "batch", "--help"],
        "explain --methods gradcm (refused)": [*py, "explain", str(photo), "--methods",
                                               "gradcm", "--out", str(out / "typo")],
        "batch of 1 image (lraspp, 320 px, CPU)": [
            *py, "batch", str(photo), "--model", "lraspp_mobilenet_v3_large", "--weights",
            "untrained", "--device", "cpu", "--size", "320", "-q", "--out", str(out / "b")],
        "bare import torch, torchvision": [sys.executable, "-c", "import torch, torchvision"],
    }
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {runs} runs (median), "
          f"load average {[round(v, 2) for v in os.getloadavg()]}")
    for name, command in commands.items():
        timed(command)  # warm the file cache once; not counted
        walls, peaks = [], []
        for _ in range(runs):
            shutil.rmtree(out / "b", ignore_errors=True)
            wall, peak = timed(command)
            walls.append(wall)
            peaks.append(peak)
        each = ", ".join(f"{w:.2f}" for w in walls)
        print(f"{name:42} {statistics.median(walls):7.2f} s  peak RSS "
              f"{statistics.median(peaks):6.0f} MiB   (runs: {each})", flush=True)
    print(f"load average after: {[round(v, 2) for v in os.getloadavg()]}")
    shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cli", action="store_true",
                        help="time the command line's start-up instead of the window's")
    parser.add_argument("--image", default=None, help="open this image at start-up")
    parser.add_argument("--display", action="store_true",
                        help="use the real display instead of the offscreen platform")
    args = parser.parse_args()
    if args.cli:
        cli(args.runs)
        return

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
