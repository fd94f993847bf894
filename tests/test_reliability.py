"""Issue 6 at the command line: every bad input and fault ends in one stderr line.

Each case runs ``segexplorer.cli.main`` in-process on a tiny model (``tests/tiny_models.py``)
at working size 32, and checks the exit status, that stderr holds exactly one line
starting ``segexplorer: error:``, that there is no traceback, and that nothing half-written
is left behind. ``capfd`` captures file descriptor 2 itself, so output that C libraries
write there directly (libtiff does) counts too. Two subprocess tests check the same
for a fresh interpreter, where Python's warnings and logging would print on their own.
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from tiny_models import ColourSeg, TinySeg

import segexplorer.export.atomic as atomic
from segexplorer.cli import main
from segexplorer.engine import devices
from segexplorer.engine.results import Prediction
from segexplorer.engine.session import Session

SKDATA = Path(skimage.data.__file__).parent
ASTRONAUT = SKDATA / "astronaut.png"
ROCKET = SKDATA / "rocket.jpg"
REPO = Path(__file__).resolve().parents[1]

FAST = ["--size", "32", "--device", "cpu", "-q"]
TINY = ["--model", "tiny", "--weights", "untrained", *FAST]
LRASPP = ["--model", "lraspp_mobilenet_v3_large", "--weights", "untrained", *FAST]
OLD_REPORT = json.dumps({"model": "previous export", "targets": [1, 2, 3]}, indent=2) + "\n"


# --------------------------------------------------------------------------- helpers


def cli(capfd, *args: str) -> tuple[int, str, str]:
    """Run the CLI; no Python warning may escape it (it would print in a terminal)."""
    capfd.readouterr()  # drop whatever came before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    assert not caught, [f"{w.category.__name__}: {w.message}" for w in caught]
    return code, out, err


def one_error_line(code: int, err: str, *fragments: str, status: int | None = None) -> str:
    """The run failed with exactly one ``segexplorer: error:`` line on stderr; returns it."""
    assert code != 0
    if status is not None:
        assert code == status
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert err.endswith("\n") and lines[0].startswith("segexplorer: error: "), err
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), (fragment, lines[0])
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims ``width`` x ``height`` (CRC fixed)."""
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def tiff_bytes(**kwargs) -> bytearray:
    arr = (np.arange(16 * 12 * 3) % 256).astype(np.uint8).reshape(16, 12, 3)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "TIFF", **kwargs)
    return bytearray(buf.getvalue())


def ifd_entries(data: bytearray) -> dict[int, tuple[int, int, int]]:
    """tag -> (offset of the entry, type, value) of a little-endian TIFF's first IFD."""
    assert data[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, ifd)[0]
    entries = {}
    for i in range(count):
        offset = ifd + 2 + 12 * i
        tag, kind, _n, value = struct.unpack_from("<HHII", data, offset)
        entries[tag] = (offset, kind, value & 0xFFFF if kind == 3 else value)
    return entries


def noisy_tiffs(folder: Path) -> dict[str, Path]:
    """Damaged TIFFs that make the libraries print before the decoder gives up."""
    files = {}
    # SamplesPerPixel = 5379: Pillow *logs* an error (stderr via logging's last resort)
    data = tiff_bytes()
    offset, _, _ = ifd_entries(data)[277]
    struct.pack_into("<H", data, offset + 8, 5379)
    files["logging"] = folder / "samples.tif"
    files["logging"].write_bytes(bytes(data))
    # deflate data overwritten: libtiff prints "ZIPDecode: Decoding error" from C
    data = tiff_bytes(compression="tiff_deflate")
    strip = ifd_entries(data)[273][2]
    data[strip + 2:strip + 40] = b"\xff" * 38
    files["libtiff"] = folder / "deflate.tif"
    files["libtiff"].write_bytes(bytes(data))
    # cut inside the IFD: Pillow *warns* (UserWarning: Truncated File Read)
    data = tiff_bytes()
    ifd = struct.unpack_from("<I", data, 4)[0]
    files["warning"] = folder / "cut.tif"
    files["warning"].write_bytes(bytes(data[:ifd + 2 + 12 * 6]))
    return files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every image and weights file the tests feed the CLI, made once."""
    root = tmp_path_factory.mktemp("reliability")
    img = root / "images"
    img.mkdir()
    astronaut = ASTRONAUT.read_bytes()
    rocket = ROCKET.read_bytes()
    good = img / "good.png"
    Image.open(ASTRONAUT).convert("RGB").resize((48, 40)).save(good)
    bad = {
        "zero-byte": (img / "empty.png", b"", "empty"),
        "truncated-png": (img / "half.png", astronaut[: len(astronaut) // 2], "truncated"),
        "truncated-jpeg": (img / "half.jpg", rocket[: len(rocket) // 2], "truncated"),
        "text-as-png": (img / "notes.png", b"this is not a picture\nsecond line\n", "not an image"),
        "bomb": (img / "bomb.png", png_declaring(100_000, 100_000), "downscale"),
    }
    for path, data, _ in bad.values():
        path.write_bytes(data)
    (img / "album.png").mkdir()
    bad["directory"] = (img / "album.png", None, "folder")
    bad["missing"] = (img / "nowhere" / "ghost.jpg", None, "does not exist")
    os.mkfifo(img / "pipe.png")
    bad["fifo"] = (img / "pipe.png", None, "not a regular file")
    odd = img / "café ñ 写真"
    odd.mkdir()
    (odd / "broken ñ.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    bad["non-ascii-broken"] = (odd / "broken ñ.png", None, "café ñ 写真")
    noisy = noisy_tiffs(img)
    for kind, path in noisy.items():
        bad[f"damaged-tiff-{kind}"] = (path, None, path.name)

    w = root / "weights"
    w.mkdir()
    torch.manual_seed(0)
    torch.save(TinySeg().state_dict(), w / "tiny.pth")
    data = (w / "tiny.pth").read_bytes()
    (w / "half.pth").write_bytes(data[: len(data) // 2])
    (w / "empty.pth").write_bytes(b"")
    (w / "notes.pth").write_text("hello, this is a text file\n")
    torch.save(ColourSeg().state_dict(), w / "colour.pth")
    wide = TinySeg().state_dict()
    wide["body.0.weight"] = torch.zeros(5, 3, 3, 3)  # not the class count: another network
    torch.save(wide, w / "wide.pth")
    torch.save(TinySeg(), w / "whole.pth")
    (w / "folder.pth").mkdir()
    nan = {k: torch.full_like(v, float("nan")) for k, v in TinySeg().state_dict().items()}
    torch.save(nan, w / "nan.pth")
    return {"root": root, "good": good, "odd_dir": odd, "bad_images": bad, "noisy": noisy,
            "weights": w}


class Evil:
    """Unpickling this runs ``touch MARKER`` (if anything ever unpickled it)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


# --------------------------------------------------------------------------- images


BAD_IMAGES = ["zero-byte", "truncated-png", "truncated-jpeg", "text-as-png", "bomb",
              "directory", "missing", "fifo", "non-ascii-broken", "damaged-tiff-logging",
              "damaged-tiff-libtiff", "damaged-tiff-warning"]


@pytest.mark.parametrize("kind", BAD_IMAGES)
def test_bad_image_is_one_line(files, tmp_path, capfd, kind):
    path, _, fragment = files["bad_images"][kind]
    out_dir = tmp_path / "out"
    code, out, err = cli(capfd, "explain", path, *LRASPP, "--out", out_dir)
    one_error_line(code, err, fragment, status=1)
    assert out == ""
    assert not out_dir.exists() or listing(out_dir) == []


def test_bad_image_for_ablate_too(files, tmp_path, capfd):
    path, _, fragment = files["bad_images"]["truncated-jpeg"]
    code, _, err = cli(capfd, "ablate", path, *TINY, "--at", "3,3", "--out", tmp_path / "o")
    one_error_line(code, err, "truncated", status=1)


def _exif_rotated(path: Path) -> Path:
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: 20 wide, 40 high
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def _odd_images(folder: Path) -> dict[str, tuple[Path, tuple[int, int]]]:
    """Unusual but valid images and the working size (H, W) each must reach at size 32."""
    made = {}
    Image.fromarray(np.arange(40 * 48, dtype=np.uint16).reshape(40, 48) * 30).save(
        folder / "gray16.png")
    made["16-bit-png"] = folder / "gray16.png"
    Image.fromarray(np.linspace(-1, 3, 40 * 48, dtype=np.float32).reshape(40, 48)).save(
        folder / "float.tif")
    made["float-tiff"] = folder / "float.tif"
    Image.new("RGB", (48, 40), (200, 30, 30)).convert("CMYK").save(folder / "cmyk.jpg")
    made["cmyk-jpeg"] = folder / "cmyk.jpg"
    pal = Image.new("P", (48, 40))
    pal.putpalette([0, 0, 0, 200, 10, 10] + [0] * (254 * 3))
    pal.save(folder / "palette.png", transparency=0)
    made["palette-transparency"] = folder / "palette.png"
    Image.new("RGBA", (48, 40), (10, 200, 10, 100)).save(folder / "rgba.png")
    made["rgba"] = folder / "rgba.png"
    Image.new("L", (48, 40), 90).save(folder / "gray.png")
    made["grayscale"] = folder / "gray.png"
    frames = [Image.new("RGB", (48, 40), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    made["animated-gif"] = folder / "anim.gif"
    shapes = {k: (p, (32, 38)) for k, p in made.items()}  # 48 x 40 -> H 32, W 38
    shapes["exif-rotated"] = (_exif_rotated(folder / "exif6.jpg"), (64, 32))
    return shapes


def test_unusual_valid_images_explain_cleanly(files, tmp_path, capfd):
    """Each opens, in the right orientation, and the run prints nothing at all."""
    folder = files["odd_dir"]
    for kind, (path, shape) in _odd_images(tmp_path).items():
        out_dir = folder / f"out {kind}"  # spaces and non-ASCII letters in the output path
        code, out, err = cli(capfd, "explain", path, *TINY, "--methods", "gradcam",
                             "--out", out_dir)
        assert (code, out, err) == (0, "", ""), kind
        report = json.loads((out_dir / "report.json").read_text("utf-8"))
        assert report["working_size"] == list(shape), kind
    good = folder / "photo 1.png"
    good.write_bytes(files["good"].read_bytes())
    code, out, err = cli(capfd, "explain", good, *TINY, "--methods", "gradcam",
                         "--out", folder / "out")
    assert (code, err) == (0, "")


# --------------------------------------------------------------------------- weights


BAD_WEIGHTS = [
    ("truncated", "half.pth", "truncated"),
    ("empty", "empty.pth", "empty"),
    ("text", "notes.pth", "could not be read"),
    ("other-architecture", "colour.pth", "not a tiny state dict"),
    ("other-shape", "wide.pth", "expected (8, 3, 3, 3)"),
    ("whole-pickled-model", "whole.pth", "torch.save(model.state_dict(), path)"),
    ("directory", "folder.pth", "folder"),
    ("missing", "gone.pth", "does not exist"),
]


@pytest.mark.parametrize("kind,name,fragment", BAD_WEIGHTS, ids=[k for k, _, _ in BAD_WEIGHTS])
def test_bad_weights_are_one_line(files, tmp_path, capfd, kind, name, fragment):
    code, out, err = cli(capfd, "explain", files["good"], "--model", "tiny", "--weights",
                         files["weights"] / name, *FAST, "--out", tmp_path / "o")
    line = one_error_line(code, err, fragment, name, status=1)
    if kind == "whole-pickled-model":
        assert "whole model" in line
    assert out == ""


def test_code_running_weights_are_refused_unrun(files, tmp_path, capfd):
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pth"
    torch.save({"body.0.weight": torch.zeros(1), "x": Evil(marker)}, evil)
    for command in (["explain", files["good"]], ["ablate", files["good"], "--at", "1,1"]):
        code, _, err = cli(capfd, *command, "--model", "tiny", "--weights", evil, *FAST,
                           "--out", tmp_path / "o")
        one_error_line(code, err, "would run code", "do not trust", status=1)
        assert not marker.exists()


def test_working_weights_file_still_loads(files, tmp_path, capfd):
    code, _, err = cli(capfd, "explain", files["good"], "--model", "tiny", "--weights",
                       files["weights"] / "tiny.pth", *FAST, "--methods", "gradcam",
                       "--out", tmp_path / "o")
    assert (code, err) == (0, "")


def test_weights_full_of_nan_are_a_user_error(files, tmp_path, capfd):
    code, _, err = cli(capfd, "explain", files["good"], "--model", "tiny", "--weights",
                       files["weights"] / "nan.pth", *FAST, "--out", tmp_path / "o")
    assert not (tmp_path / "o").exists()  # nothing is written, not even the folder
    one_error_line(code, err, "nan.pth", status=1)


# --------------------------------------------------------------------------- devices


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_absent_device_says_use_cpu(files, tmp_path, capfd, monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    code, _, err = cli(capfd, "explain", files["good"], "--model", "tiny", "--weights",
                       "untrained", "--size", "32", "-q", "--device", device,
                       "--out", tmp_path / "o")
    one_error_line(code, err, f"'{device}'", "--device cpu", status=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_absent_cuda_without_simulation(files, tmp_path, capfd):
    code, _, err = cli(capfd, "ablate", files["good"], *TINY, "--device", "cuda", "--at", "1,1",
                       "--out", tmp_path / "o")
    one_error_line(code, err, "no CUDA GPU", "--device cpu", status=1)


# --------------------------------------------------------------------------- files


@pytest.fixture
def out_with_old_report(tmp_path):
    """An output folder holding a complete report.json from an earlier export."""
    out_dir = tmp_path / "export"
    out_dir.mkdir()
    (out_dir / "report.json").write_text(OLD_REPORT)
    return out_dir


def _fail_in(folder: Path, real, exc: BaseException, names: tuple[str, ...] = ()):
    """``real`` (os.replace / tempfile.mkstemp), failing for files in ``folder``."""

    def wrapper(*args, **kwargs):
        where = kwargs.get("dir") or (args[1] if len(args) > 1 else None)
        path = Path(where) if where is not None else None
        inside = path is not None and folder in (path, path.parent)
        if inside and (not names or path.name in names):
            raise exc
        return real(*args, **kwargs)

    return wrapper


def _old_report_intact(out_dir: Path, others: tuple[str, ...] = ()) -> None:
    assert (out_dir / "report.json").read_text() == OLD_REPORT
    assert not [n for n in listing(out_dir) if n.endswith(".tmp")], listing(out_dir)
    assert listing(out_dir) == sorted(("report.json", *others))


def test_read_only_folder(files, out_with_old_report, capfd, monkeypatch):
    out_dir = out_with_old_report
    monkeypatch.setattr(atomic.tempfile, "mkstemp", _fail_in(
        out_dir, atomic.tempfile.mkstemp, PermissionError(errno.EACCES, "Permission denied")))
    code, _, err = cli(capfd, "explain", files["good"], *TINY, "--out", out_dir)
    one_error_line(code, err, "permission denied", "segmentation.png", status=1)
    _old_report_intact(out_dir)


def test_read_only_file_system(files, out_with_old_report, capfd, monkeypatch):
    out_dir = out_with_old_report
    monkeypatch.setattr(atomic.tempfile, "mkstemp", _fail_in(
        out_dir, atomic.tempfile.mkstemp, OSError(errno.EROFS, "Read-only file system")))
    code, _, err = cli(capfd, "ablate", files["good"], *TINY, "--at", "3,3", "--out", out_dir)
    one_error_line(code, err, "permission denied", status=1)
    _old_report_intact(out_dir)


def test_full_disk_while_renaming_leaves_no_temp_file(files, out_with_old_report, capfd,
                                                      monkeypatch):
    out_dir = out_with_old_report
    monkeypatch.setattr(atomic.os, "replace", _fail_in(
        out_dir, os.replace, OSError(errno.ENOSPC, "No space left on device")))
    code, _, err = cli(capfd, "explain", files["good"], *TINY, "--out", out_dir)
    one_error_line(code, err, "disk is full", status=1)
    _old_report_intact(out_dir)


def test_full_disk_while_writing_leaves_no_temp_file(files, out_with_old_report, capfd,
                                                     monkeypatch):
    out_dir = out_with_old_report

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    code, _, err = cli(capfd, "explain", files["good"], *TINY, "--out", out_dir)
    one_error_line(code, err, "disk is full", status=1)
    _old_report_intact(out_dir)


def test_disk_full_at_the_report_keeps_the_old_report_whole(files, out_with_old_report, capfd,
                                                            monkeypatch):
    """The images before it are new and complete; report.json is the old one, untouched."""
    out_dir = out_with_old_report
    monkeypatch.setattr(atomic.os, "replace", _fail_in(
        out_dir, os.replace, OSError(errno.ENOSPC, "No space left on device"),
        names=("report.json",)))
    code, _, err = cli(capfd, "explain", files["good"], *TINY, "--out", out_dir)
    one_error_line(code, err, "disk is full", "report.json", status=1)
    written = [n for n in listing(out_dir) if n != "report.json"]
    assert "segmentation.png" in written and "attributions.npz" in written
    _old_report_intact(out_dir, tuple(written))
    for name in written:
        if name.endswith(".png"):
            with Image.open(out_dir / name) as image:
                image.load()  # complete, not truncated


def test_interrupt_while_writing_leaves_no_temp_file(files, out_with_old_report, capfd,
                                                     monkeypatch):
    out_dir = out_with_old_report

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupted)
    code, _, err = cli(capfd, "explain", files["good"], *TINY, "--out", out_dir)
    one_error_line(code, err, "interrupted", status=130)
    _old_report_intact(out_dir)


def test_successful_export_replaces_the_report_whole_with_usual_permissions(
        files, out_with_old_report, capfd):
    out_dir = out_with_old_report
    (out_dir / "report.json").chmod(0o640)
    code, _, err = cli(capfd, "explain", files["good"], *TINY, "--out", out_dir)
    assert (code, err) == (0, "")
    report = json.loads((out_dir / "report.json").read_text())
    assert report["model"] == "tiny" and report["untrained"] is True
    assert not [n for n in listing(out_dir) if n.endswith(".tmp")]
    # mkstemp's private 0600 must not reach the exported files
    assert stat.S_IMODE((out_dir / "report.json").stat().st_mode) == 0o640  # kept
    umask = os.umask(0o022)
    os.umask(umask)
    for name in listing(out_dir):
        if name != "report.json":
            assert stat.S_IMODE((out_dir / name).stat().st_mode) == 0o666 & ~umask, name


@pytest.mark.parametrize("command", ["explain", "ablate"])
def test_output_path_that_is_a_file(files, tmp_path, capfd, command):
    existing = tmp_path / "results.json"
    existing.write_text(OLD_REPORT)
    extra = ["--at", "3,3"] if command == "ablate" else []
    code, _, err = cli(capfd, command, files["good"], *TINY, *extra, "--out", existing)
    one_error_line(code, err, "is a file, not a folder", status=1)
    assert existing.read_text() == OLD_REPORT


@pytest.mark.parametrize("where,fragment", [
    ("through-file", "not a directory"),
    ("name-too-long", "too long"),
    ("dangling-link", "in the way"),
], ids=["through-file", "name-too-long", "dangling-link"])
def test_output_folder_that_cannot_be_made(files, tmp_path, capfd, where, fragment):
    if where == "through-file":
        (tmp_path / "file").write_text("x")
        out_dir = tmp_path / "file" / "sub"
    elif where == "name-too-long":
        out_dir = tmp_path / ("x" * 300)
    else:
        out_dir = tmp_path / "link"
        out_dir.symlink_to(tmp_path / "gone")
    code, _, err = cli(capfd, "explain", files["good"], *TINY, "--out", out_dir)
    one_error_line(code, err, fragment, status=1)


# --------------------------------------------------------------------------- interruption, bugs


def test_ctrl_c_during_the_sweep_exits_130(files, out_with_old_report, capfd, monkeypatch):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Session, "sweep", interrupted)
    out_dir = out_with_old_report
    code, out, err = cli(capfd, "explain", files["good"], *TINY, "--out", out_dir)
    assert one_error_line(code, err, status=130) == "segexplorer: error: interrupted"
    assert out == ""
    _old_report_intact(out_dir)


def test_ctrl_c_during_a_click_ablation_exits_130(files, tmp_path, capfd, monkeypatch):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Session, "ablate", interrupted)
    code, _, err = cli(capfd, "ablate", files["good"], *TINY, "--at", "3,3",
                       "--out", tmp_path / "o")
    one_error_line(code, err, "interrupted", status=130)
    assert not (tmp_path / "o").exists()  # nothing written, not even the folder


def test_internal_error_is_one_line_with_the_debug_hint(files, out_with_old_report, capfd,
                                                        monkeypatch):
    def bug(*args, **kwargs):
        return 1 / 0

    monkeypatch.delenv("SEGEXPLORER_DEBUG", raising=False)
    monkeypatch.setattr(Prediction, "segments", bug)  # the ablation's segments
    out_dir = out_with_old_report
    code, _, err = cli(capfd, "explain", files["good"], *TINY, "--out", out_dir)
    one_error_line(code, err, "internal error (ZeroDivisionError: division by zero)",
                   "SEGEXPLORER_DEBUG=1", status=3)
    _old_report_intact(out_dir)
    # and SEGEXPLORER_DEBUG=1 gives the developer the real exception
    monkeypatch.setenv("SEGEXPLORER_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["explain", str(files["good"]), *TINY, "--out", str(out_dir)])


def test_usage_errors_are_one_line(capfd):
    """argparse's errors: exit 2 (through SystemExit, as argparse does) and one line."""
    for args in (["explain", "x.png"], ["explain", "x.png", "--out", "o", "--size", "big"],
                 ["ablate", "x.png", "--out", "o"], ["frobnicate", "--nope"]):
        capfd.readouterr()
        with pytest.raises(SystemExit) as info:
            main(args)
        out, err = capfd.readouterr()
        assert info.value.code == 2 and out == "" and "Traceback" not in err
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("segexplorer") and ": error: " in lines[0]


def test_unknown_model_for_layers_is_one_line(capfd):
    code, _, err = cli(capfd, "layers", "resnet9000")
    one_error_line(code, err, "Unknown model", status=1)


# --------------------------------------------------------------------------- a fresh process


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SEGEXPLORER_DEBUG", None)
    env["PYTHONWARNINGS"] = "always"  # every warning would print: none may reach stderr
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def test_module_on_a_truncated_png_prints_exactly_one_line(files, tmp_path):
    path = files["bad_images"]["truncated-png"][0]
    proc = subprocess.run([sys.executable, "-m", "segexplorer", "explain", str(path), *LRASPP,
                           "--out", str(tmp_path / "o")], capture_output=True, text=True,
                          timeout=120, env=_clean_env(), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (f"segexplorer: error: Image '{path}' is damaged or truncated (image "
                           "file is truncated): save it again or pick another file.\n")


def test_library_chatter_never_reaches_stderr(files, tmp_path):
    """Pillow's warning and log record and libtiff's C message, in a fresh interpreter."""
    paths = [str(p) for p in files["noisy"].values()]
    script = ("import sys\nfrom segexplorer.cli import main\n"
              "codes = [main(['explain', p, *sys.argv[2:]]) for p in sys.argv[1].split('|')]\n"
              "sys.exit(0 if codes == [1] * len(codes) else 9)\n")
    proc = subprocess.run([sys.executable, "-c", script, "|".join(paths), *LRASPP,
                           "--out", str(tmp_path / "o")], capture_output=True, text=True,
                          timeout=120, env=_clean_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == len(paths), proc.stderr
    for line, path in zip(lines, paths):
        assert line.startswith("segexplorer: error: ") and Path(path).name in line


# --------------------------------------------------------------------------- guarantees


def test_no_thread_is_ever_terminated():
    """Cancellation is cooperative: nothing in segexplorer/ kills a thread or process."""
    import ast

    import segexplorer

    root = Path(segexplorer.__file__).parent
    calls = []
    for py in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("terminate", "setTerminationEnabled", "kill"):
                calls.append(f"{py.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    assert calls == []
