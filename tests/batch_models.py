"""Small models and image folders for the batch tests (``tests/test_batch*.py``).

The model is a user's own network behind a model card with a python factory, so that a
batch in a subprocess or in a Ray actor builds the same model (the tiny architectures of
``tiny_models.py`` exist only in processes that register them). ``delay`` makes each
forward pass sleep, so that a test can kill a batch in the middle of its work.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

FACTORY = '''
import time

import torch.nn.functional as F
from torch import nn


class SixClasses(nn.Module):
    """A few convolutions, six classes, output at the input's resolution."""

    def __init__(self, delay=0.0):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Conv2d(12, 6, 1)
        self.delay = delay

    def forward(self, x):
        if self.delay:
            time.sleep(self.delay)
        out = self.head(self.body(x))
        return F.interpolate(out, x.shape[2:], mode="bilinear", align_corners=False)


def build(delay=0.0):
    return SixClasses(delay)
'''

CLASSES = ("background", "sky", "road", "car", "person", "tree")


@dataclass(frozen=True)
class BatchModels:
    fast: Path  # a card: no delay
    slow: Path  # the same model (same seeded weights), each forward pass sleeping


def write_cards(folder: Path, delay: float = 0.04) -> BatchModels:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "six_factory.py").write_text(FACTORY, encoding="utf-8")
    cards = {}
    for name, wait in (("fast", 0.0), ("slow", delay)):
        cards[name] = folder / f"six_{name}.toml"
        cards[name].write_text(textwrap.dedent(f'''
            [model]
            name = "six classes"
            source = "python"
            factory = "six_factory.py:build"
            classes = {list(CLASSES)!r}
            options = {{ delay = {wait} }}

            [preprocess]
            size = 32

            [explain]
            layer = "body.2"
            ''').replace("'", '"'), encoding="utf-8")
    return BatchModels(cards["fast"], cards["slow"])


def skimage_photo(name: str) -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / name


PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
          "hubble_deep_field.jpg", "ihc.png", "retina.jpg")


def photo_folder(folder: Path, count: int = 8, side: int = 56) -> Path:
    """``count`` small real photos (crops of scikit-image's), some in a subfolder with a
    space and a non-ASCII letter in its name."""
    folder.mkdir(parents=True, exist_ok=True)
    sub = folder / "more photos é"
    sub.mkdir(exist_ok=True)
    for i in range(count):
        name = PHOTOS[i % len(PHOTOS)]
        with Image.open(skimage_photo(name)) as image:
            rgb = image.convert("RGB")
        w, h = rgb.size
        box = (i * 7 % max(w // 3, 1), i * 5 % max(h // 3, 1))
        crop = rgb.crop((box[0], box[1], box[0] + w * 2 // 3, box[1] + h * 2 // 3))
        crop = crop.resize((side + 4 * (i % 3), side))
        target = (sub if i % 3 == 2 else folder) / f"{i:02d}_{Path(name).stem}.png"
        crop.save(target)
    return folder


def awkward_folder(folder: Path) -> dict[str, Path]:
    """Broken, huge, odd-mode and non-image files beside two good photos."""
    import io
    import struct
    import zlib

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    photo_folder(folder / "good", count=2)
    with Image.open(skimage_photo("astronaut.png")) as image:
        data = io.BytesIO()
        image.convert("RGB").resize((60, 60)).save(data, "PNG")
    png = data.getvalue()
    files["truncated"] = folder / "truncated.png"
    files["truncated"].write_bytes(png[: len(png) // 2])
    files["empty"] = folder / "empty.jpg"
    files["empty"].write_bytes(b"")
    files["text"] = folder / "notes.txt"
    files["text"].write_text("not a picture\n")
    files["text_png"] = folder / "letter.png"
    files["text_png"].write_text("Dear model, this is not a picture.\n")
    # a valid PNG header that claims 100000 x 100000 pixels (a decompression bomb)
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(buf, "PNG")
    bomb = bytearray(buf.getvalue())
    bomb[16:24] = struct.pack(">II", 100_000, 100_000)
    bomb[29:33] = struct.pack(">I", zlib.crc32(bytes(bomb[12:29])) & 0xFFFFFFFF)
    files["huge"] = folder / "huge.png"
    files["huge"].write_bytes(bytes(bomb))
    files["thin"] = folder / "thin.png"  # 1 x 400: too thin to analyse at any size
    Image.new("RGB", (400, 1), (200, 10, 10)).save(files["thin"])
    # odd but valid modes: each is explained
    odd = folder / "odd modes"
    odd.mkdir()
    ramp = np.arange(40 * 48, dtype=np.uint16).reshape(40, 48) * 30
    Image.fromarray(ramp).save(odd / "gray16.png")
    Image.new("RGB", (48, 40), (200, 30, 30)).convert("CMYK").save(odd / "cmyk.jpg")
    pal = Image.new("P", (48, 40))
    pal.putpalette([0, 0, 0, 200, 10, 10] + [0] * (254 * 3))
    pal.paste(1, (10, 10, 30, 30))
    pal.save(odd / "palette.png", transparency=0)
    Image.new("RGBA", (48, 40), (10, 200, 10, 100)).save(odd / "rgba.png")
    Image.fromarray(np.linspace(-1, 3, 40 * 48, dtype=np.float32).reshape(40, 48)).save(
        odd / "float.tif")
    (folder / ".hidden.png").write_bytes(b"ignored: hidden files are not inputs")
    return files


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# --------------------------------------------------------------------------- comparing


def report_without_timings(path: Path) -> dict:
    """A report without what depends on the moment: its timings, and the memory budget
    (on a CPU half the memory available then; the outputs do not depend on it)."""
    report = json.loads(path.read_text("utf-8"))
    report.pop("timings_seconds")
    report.pop("memory_budget", None)
    return report


def assert_same_image_files(ours: Path, theirs: Path) -> None:
    """The same files; equal pixels, arrays and reports (timings aside)."""
    names = sorted(p.name for p in ours.iterdir())
    assert names == sorted(p.name for p in theirs.iterdir())
    assert "report.json" in names and "attributions.npz" in names
    for name in names:
        a, b = ours / name, theirs / name
        if name.endswith(".png"):
            assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))), name
        elif name.endswith(".npz"):
            za, zb = np.load(a), np.load(b)
            assert sorted(za.files) == sorted(zb.files)
            for key in za.files:
                assert za[key].dtype == zb[key].dtype, key
                assert np.array_equal(za[key], zb[key]), key
        elif name == "report.json":
            ra, rb = report_without_timings(a), report_without_timings(b)
            assert ra == rb, {k: (ra.get(k), rb.get(k)) for k in set(ra) | set(rb)
                              if ra.get(k) != rb.get(k)}
        else:
            assert a.read_bytes() == b.read_bytes(), name


def image_folders(out: Path) -> dict[str, Path]:
    root = out / "images"
    return {str(p.parent.relative_to(root).as_posix()): p.parent
            for p in root.rglob("report.json")}


def journal_keys(out: Path) -> list[str]:
    path = out / "journal.jsonl"
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    return [json.loads(line)["key"] for line in lines if line.strip()]


def assert_same_outputs(ours: Path, theirs: Path) -> None:
    """Two batch folders hold the same results: tables, journal keys, image folders."""
    assert pq.read_table(ours / "summary.parquet").equals(pq.read_table(theirs / "summary.parquet"))
    for name in ("summary.csv", "errors.csv", "context.csv", "leaning.csv"):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    keys = journal_keys(ours)
    assert len(keys) == len(set(keys)), "a duplicate journal line"
    assert sorted(keys) == sorted(journal_keys(theirs))
    folders, expected = image_folders(ours), image_folders(theirs)
    assert sorted(folders) == sorted(expected)
    for key, folder in folders.items():
        assert_same_image_files(folder, expected[key])
    leftovers = [p for p in ours.rglob("*") if p.name.endswith(".tmp")
                 or (p.is_dir() and p.parent.name == ".partial")]
    assert leftovers == []
