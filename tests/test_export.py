"""Export: atomic writes, figures through Captum's own drawing, NPZ/JSON/PNG content."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest
from PIL import Image

from segexplorer.engine.errors import UserError
from segexplorer.export import atomic_write, save_figure, save_json, save_npz, save_png
from segexplorer.export.atomic import ensure_folder


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_png_npz_json_roundtrip(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 255, (7, 9, 4), dtype=np.uint8)
    save_png(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), rgba)
    save_npz(tmp_path / "a.npz", {"x": np.arange(5, dtype=np.float32)})
    np.testing.assert_array_equal(np.load(tmp_path / "a.npz")["x"], np.arange(5))
    save_json(tmp_path / "a.json", {"name": "café", "v": [1.5]})
    assert json.loads((tmp_path / "a.json").read_text("utf-8")) == {"name": "café", "v": [1.5]}
    assert listing(tmp_path) == ["a.json", "a.npz", "a.png"]  # no temp files left


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old complete content")

    def broken_writer(handle):
        handle.write(b"half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError, match="disk is full"):
        atomic_write(target, broken_writer)
    assert target.read_text() == "old complete content"
    assert listing(tmp_path) == ["report.json"]


def test_nan_in_report_is_refused_without_partial_file(tmp_path):
    with pytest.raises(ValueError):
        save_json(tmp_path / "r.json", {"x": float("nan")})
    assert listing(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_folder_is_a_clear_message(tmp_path):  # pragma: no cover - CI runs as root
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(UserError, match="permission denied"):
            save_png(folder / "x.png", np.zeros((2, 2, 3), np.uint8))
    finally:
        folder.chmod(0o700)


def test_permission_error_message(tmp_path, monkeypatch):
    """Simulated, since the tests may run as root (who can write anywhere)."""
    import segexplorer.export.atomic as atomic

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    with pytest.raises(UserError, match="permission denied"):
        save_png(tmp_path / "x.png", np.zeros((2, 2, 3), np.uint8))
    assert listing(tmp_path) == []


def test_missing_folder_and_file_in_the_way(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        save_png(tmp_path / "nope" / "x.png", np.zeros((2, 2, 3), np.uint8))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        ensure_folder(tmp_path / "file")
    assert ensure_folder(tmp_path / "new" / "deep").is_dir()


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_figure_formats(tmp_path, suffix):
    rng = np.random.default_rng(1)
    attr = rng.normal(size=(24, 32)).astype(np.float32)
    image = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    path = save_figure(tmp_path / f"fig{suffix}", attr, image, titles=["image", "all", "+", "-"],
                       methods=["original_image", "blended_heat_map", "blended_heat_map",
                                "blended_heat_map"],
                       signs=["all", "all", "positive", "negative"])
    head = path.read_bytes()[:8]
    assert {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix] in head


def test_figure_with_nothing_of_a_sign_still_exports(tmp_path):
    attr = np.ones((16, 16), np.float32)  # nothing negative: Captum alone would refuse
    image = np.zeros((16, 16, 3), np.uint8)
    save_figure(tmp_path / "f.png", attr, image)
    assert (tmp_path / "f.png").stat().st_size > 1000
    with pytest.raises(UserError, match="svg"):
        save_figure(tmp_path / "f.gif", attr, image)
