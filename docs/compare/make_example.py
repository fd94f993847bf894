"""Make the worked example of docs/compare.md: the stain model (stain.toml) against a
copy whose ``nuclei`` row of the classifier is scaled by 1.6, on scikit-image's
immunohistochemistry photo; copies pixels_changed.png and the nuclei figure next to this
script (as 256-colour PNGs, to keep the repository small) and prints compare.json's
per-class numbers.

    PYTHONPATH=. python docs/compare/make_example.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import skimage
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stain_model import CLASSES, build  # noqa: E402

from segexplorer.cli import main  # noqa: E402

NUCLEI = CLASSES.index("nuclei")
FACTOR = 1.6


def run() -> int:
    image = Path(skimage.__file__).parent / "data" / "ihc.png"
    with tempfile.TemporaryDirectory() as tmp:
        state = build().state_dict()
        state["head.weight"][NUCLEI] *= FACTOR
        state["head.bias"][NUCLEI] *= FACTOR
        tweaked = Path(tmp) / f"stain_nuclei_x{FACTOR}.pt"
        torch.save(state, tweaked)
        out = Path(tmp) / "out"
        code = main(["compare", str(image), "--model", str(HERE / "stain.toml"),
                     "--with", str(HERE / "stain.toml"), "--with-weights", str(tweaked),
                     "--device", "cpu", "--out", str(out)])
        if code:
            return code
        report = json.loads((out / "compare.json").read_text())
        for name in ("pixels_changed.png", f"compare_{NUCLEI}_nuclei.png"):
            Image.open(out / name).convert("RGB").quantize(256).save(HERE / name,
                                                                      optimize=True)
        for entry in report["per_class"]:
            print(json.dumps({k: entry[k] for k in ("class", "share_a", "share_b", "iou",
                                                    "score_a", "score_b", "maps")}))
        print(json.dumps(report["pixels_changed"]))
    return 0


if __name__ == "__main__":
    sys.exit(run())
