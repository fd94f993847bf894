"""Check that a built bundle computes what the Python environment computes.

    python packaging/compare_arrays.py --frozen dist/SegExplorer/segexplorer PHOTO [PHOTO ...]
                                       [--out DIR] [-- EXTRA EXPLAIN OPTIONS]

Runs ``segexplorer explain PHOTO --weights untrained --device cpu`` twice per photo, once with
the bundle's command line and once with this Python (``python -m segexplorer``), and compares
every array of every ``.npz`` file exactly (same names, dtypes, shapes and values), and the
PNG files byte for byte. Exits 1 on any difference. Untrained weights are seeded, so both
runs build the same model without downloading anything.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def explain(command: list[str], photo: Path, out: Path, extra: list[str]) -> float:
    started = time.monotonic()
    subprocess.run([*command, "explain", str(photo), "--weights", "untrained", "--device", "cpu",
                    "--out", str(out), "-q", *extra], check=True)
    return time.monotonic() - started


def compare_folders(frozen: Path, venv: Path) -> tuple[list[str], dict[str, int]]:
    """Differences between two explain outputs ([] if none) and what was compared."""
    problems: list[str] = []
    counted = {"npz": 0, "arrays": 0, "values": 0, "png": 0}
    names_f = sorted(p.name for p in frozen.iterdir())
    names_v = sorted(p.name for p in venv.iterdir())
    if names_f != names_v:
        problems.append(f"different files: {sorted(set(names_f) ^ set(names_v))}")
    for name in sorted(set(names_f) & set(names_v)):
        a, b = frozen / name, venv / name
        if name.endswith(".npz"):
            counted["npz"] += 1
            with np.load(a) as fa, np.load(b) as fb:
                if sorted(fa.files) != sorted(fb.files):
                    problems.append(f"{name}: different arrays")
                    continue
                for key in fa.files:
                    x, y = fa[key], fb[key]
                    counted["arrays"] += 1
                    counted["values"] += x.size
                    if x.dtype != y.dtype or x.shape != y.shape:
                        problems.append(f"{name}[{key}]: {x.dtype}{x.shape} vs {y.dtype}{y.shape}")
                    elif not np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"):
                        diff = np.abs(x.astype(np.float64) - y.astype(np.float64))
                        problems.append(f"{name}[{key}]: differs, max |diff| {np.nanmax(diff):.3g}")
        elif name.endswith(".png"):
            counted["png"] += 1
            if a.read_bytes() != b.read_bytes():
                problems.append(f"{name}: the PNG files differ")
    return problems, counted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frozen", required=True, help="the bundle's command-line executable")
    parser.add_argument("--out", type=Path, help="keep the outputs here (default: a temp folder)")
    parser.add_argument("photos", nargs="+", type=Path)
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []  # for explain, as they are
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="segexplorer-compare-"))
    failed = False
    for photo in args.photos:
        f_out, v_out = out / photo.stem / "frozen", out / photo.stem / "venv"
        t_f = explain([args.frozen], photo, f_out, extra)
        t_v = explain([sys.executable, "-m", "segexplorer"], photo, v_out, extra)
        problems, counted = compare_folders(f_out, v_out)
        verdict = "IDENTICAL" if not problems else "DIFFERENT"
        print(f"{photo.name}: {verdict}: {counted['npz']} npz, {counted['arrays']} arrays, "
              f"{counted['values']:,} values, {counted['png']} PNGs "
              f"(bundle {t_f:.0f} s, venv {t_v:.0f} s)")
        for problem in problems:
            print(f"  {problem}")
        failed |= bool(problems) or counted["arrays"] == 0
    print(f"outputs in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
