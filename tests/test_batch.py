"""``segexplorer batch``: explain's files per image, the dataset tables, resuming, killing.

The model is a user's network behind a python-factory model card (tests/batch_models.py),
so a batch in a fresh process builds the same model; images are small crops of
scikit-image's photos at working size 32, so a whole batch takes a few seconds.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import torch
from batch_models import (
    assert_same_image_files,
    assert_same_outputs,
    awkward_folder,
    image_folders,
    journal_keys,
    photo_folder,
    write_cards,
)
from PIL import Image

from segexplorer.batch.progress import LogProgress, TerminalProgress
from segexplorer.batch.record import Journal
from segexplorer.batch.run import BatchOptions, run_batch
from segexplorer.batch.summary import load_dataset, relative_change
from segexplorer.cli import main
from segexplorer.engine.analysis import ExplainRequest
from segexplorer.engine.jobs import NullState

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    return write_cards(tmp_path_factory.mktemp("batch_cards"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return photo_folder(tmp_path_factory.mktemp("batch_photos") / "photos")


def batch_args(model: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cards, photos):
    """An uninterrupted batch of the photos (read-only for the tests)."""
    out = tmp_path_factory.mktemp("batch_reference") / "out"
    assert main(["batch", str(photos), *batch_args(cards.fast), "--out", str(out), "-q"]) == 0
    return out


# --------------------------------------------------------------------------- helpers


def cli(capfd, *args) -> tuple[int, str, str]:
    capfd.readouterr()
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- per image


def test_each_image_folder_equals_what_explain_writes(reference, photos, cards, tmp_path,
                                                     capfd):
    folders = image_folders(reference)
    assert len(folders) == 8 and "more photos é/02_chelsea.png" in folders
    for key in ("00_astronaut.png", "more photos é/05_hubble_deep_field.png"):
        out = tmp_path / key.replace("/", "_")
        code, _, err = cli(capfd, "explain", photos / key, *batch_args(cards.fast),
                           "--out", out, "-q")
        assert (code, err) == (0, "")
        assert_same_image_files(folders[key], out)


def test_explain_options_reach_every_image(photos, cards, tmp_path, capfd):
    options = ["--methods", "ablation,gradcam", "--segments", "component", "--baseline", "blur",
               "--upsample", "bilinear", "--aggregation", "sum", "--size", "24"]
    out = tmp_path / "b"
    code, _, err = cli(capfd, "batch", photos / "more photos é", *batch_args(cards.fast),
                       *options, "--out", out, "-q")
    assert (code, err) == (0, "")
    key = "02_chelsea.png"
    code, _, _ = cli(capfd, "explain", photos / "more photos é" / key, *batch_args(cards.fast),
                     *options, "--out", tmp_path / "e", "-q")
    assert code == 0
    assert_same_image_files(out / "images" / key, tmp_path / "e")
    record = json.loads((out / "run.json").read_text())["arguments"]
    assert record["methods"] == ["ablation", "gradcam"] and record["size"] == 24
    summary = pq.read_table(out / "summary.parquet")
    # per-method columns follow the methods explain produced (no activation here)
    methods = {c.split("_")[0] for c in summary.column_names if c.endswith("_outside_share")}
    assert methods == {"ablation", "gradcam"}


# --------------------------------------------------------------------------- the tables


def test_summary_rows_are_the_images_own_numbers(reference):
    table = pq.read_table(reference / "summary.parquet").to_pylist()
    csv = pcsv.read_csv(reference / "summary.csv").to_pylist()
    assert len(csv) == len(table)
    for key, folder in image_folders(reference).items():
        report = json.loads((folder / "report.json").read_text("utf-8"))
        npz = np.load(folder / "attributions.npz")
        rows = [r for r in table if r["image"] == key]
        names = report["class_names"]
        assert [r["class_index"] for r in rows] == sorted(report["present_classes"])
        targets = {t["index"]: t for t in report["targets"]}
        for row in rows:
            c = row["class_index"]
            assert row["class"] == names[c]
            assert row["pixels"] == report["pixel_counts"][names[c]]
            assert row["score"] == pytest.approx(targets[c]["score"], rel=1e-6)
            for entry in targets[c]["ablation"]:
                column = f"delta_{entry['class_index']}_{entry['class_name']}"
                assert row[column] == pytest.approx(entry["delta"], rel=1e-6)
            own = npz["segmentation"] == c
            for method, array in (("gradcam", f"gradcam_upsampled_{c}"),
                                  ("ablation", f"ablation_{c}")):
                positive = np.clip(npz[array].astype(np.float64), 0, None)
                if positive.sum() > 0:
                    expected = positive[~own].sum() / positive.sum()
                    assert row[f"{method}_outside_share"] == pytest.approx(expected, rel=1e-9)
                else:  # nothing positive: no share
                    assert row[f"{method}_outside_share"] is None
            assert "activation_outside_share" not in row  # one map per layer, not per class


def test_context_matrix_is_the_mean_relative_change_over_images_with_both(reference):
    expected: dict[tuple[int, int], list[float]] = {}
    for folder in image_folders(reference).values():
        report = json.loads((folder / "report.json").read_text("utf-8"))
        for target in report["targets"]:
            for entry in target["ablation"]:
                change = -entry["delta"] / abs(target["score"])
                expected.setdefault((target["index"], entry["class_index"]), []).append(change)
    rows = pcsv.read_csv(reference / "context.csv").to_pylist()
    assert {(r["target_index"], r["ablated_index"]) for r in rows} == set(expected)
    for row in rows:
        changes = expected[(row["target_index"], row["ablated_index"])]
        assert row["images"] == len(changes)
        assert row["mean_relative_change"] == pytest.approx(sum(changes) / len(changes),
                                                           rel=1e-6, abs=1e-12)
    dataset = load_dataset(reference)
    some = rows[0]
    behind = dataset.context.images(some["target_index"], some["ablated_index"])
    assert len(behind) == some["images"]
    assert [v for _, v in behind] == sorted(v for _, v in behind)  # the largest drop first
    with Image.open(reference / "context.png") as heat_map:
        assert heat_map.size[0] > 300 and heat_map.size[1] > 300


def test_leaning_ranks_images_by_attribution_outside_the_object(reference):
    table = pq.read_table(reference / "summary.parquet").to_pylist()
    leaning = pcsv.read_csv(reference / "leaning.csv").to_pylist()
    assert leaning
    for (c, method) in {(r["class_index"], r["method"]) for r in leaning}:
        ranked = [r for r in leaning if r["class_index"] == c and r["method"] == method]
        assert [r["rank"] for r in ranked] == list(range(1, len(ranked) + 1))
        shares = [r["outside_share"] for r in ranked]
        assert shares == sorted(shares, reverse=True)
        expected = {r["image"] for r in table if r["class_index"] == c
                    and r[f"{method}_outside_share"] is not None}
        assert {r["image"] for r in ranked} == expected


def test_relative_change_sign_and_zero_score():
    assert relative_change(delta=30.0, score=100.0) == pytest.approx(-0.3)  # lost 30 %
    assert relative_change(delta=-5.0, score=-50.0) == pytest.approx(0.1)
    assert relative_change(delta=1.0, score=0.0) is None


# --------------------------------------------------------------------------- inputs


def test_a_folder_with_broken_huge_odd_and_non_image_files_completes(tmp_path, cards, capfd):
    files = awkward_folder(tmp_path / "mixed")
    out = tmp_path / "out"
    code, stdout, err = cli(capfd, "batch", tmp_path / "mixed", *batch_args(cards.fast),
                            "--out", out)
    assert code == 0, err
    errors = {r["image"]: r["error"] for r in pcsv.read_csv(out / "errors.csv").to_pylist()}
    assert sorted(errors) == sorted(["truncated.png", "empty.jpg", "notes.txt", "letter.png",
                                     "huge.png", "thin.png"])
    assert "truncated" in errors["truncated.png"]
    assert "empty" in errors["empty.jpg"]
    assert "not an image" in errors["notes.txt"] and "not an image" in errors["letter.png"]
    assert "too large" in errors["huge.png"] or "bomb" in errors["huge.png"]
    assert "too thin" in errors["thin.png"]
    assert all("\n" not in e for e in errors.values())
    explained = set(image_folders(out))
    assert explained == {"good/00_astronaut.png", "good/01_coffee.png", "odd modes/gray16.png",
                         "odd modes/cmyk.jpg", "odd modes/palette.png", "odd modes/rgba.png",
                         "odd modes/float.tif"}
    summary = pq.read_table(out / "summary.parquet").to_pylist()
    assert {r["image"] for r in summary} == explained
    assert "6 errors (errors.csv)" in stdout and "7 images explained" in stdout
    assert "Traceback" not in err
    # a second run repeats nothing; with --retry-errors, the failed images are tried again
    # (one was mended meanwhile) and the tables keep one row per image
    files["truncated"].write_bytes((tmp_path / "mixed" / "good" / "00_astronaut.png")
                                   .read_bytes())
    code, stdout, _ = cli(capfd, "batch", tmp_path / "mixed", *batch_args(cards.fast),
                          "--out", out)
    assert code == 0 and "0 images explained" in stdout
    code, stdout, _ = cli(capfd, "batch", tmp_path / "mixed", *batch_args(cards.fast),
                          "--retry-errors", "--out", out)
    assert code == 0 and "1 image explained" in stdout and "5 errors" in stdout
    errors = [r["image"] for r in pcsv.read_csv(out / "errors.csv").to_pylist()]
    assert "truncated.png" not in errors and len(errors) == 5
    summary = pq.read_table(out / "summary.parquet").to_pylist()
    assert {r["image"] for r in summary} == explained | {"truncated.png"}
    pairs = [(r["image"], r["class_index"]) for r in summary]
    assert len(pairs) == len(set(pairs))


def test_glob_and_list_inputs_name_images_by_their_relative_paths(photos, cards, tmp_path,
                                                                 capfd):
    out = tmp_path / "glob"
    code, _, err = cli(capfd, "batch", f"{photos}/**/0[0-2]_*.png", *batch_args(cards.fast),
                       "--methods", "ablation", "--out", out, "-q")
    assert (code, err) == (0, "")
    assert sorted(image_folders(out)) == ["00_astronaut.png", "01_coffee.png",
                                          "more photos é/02_chelsea.png"]
    listing = tmp_path / "lists" / "images.txt"
    listing.parent.mkdir()
    (tmp_path / "lists" / "local.png").write_bytes((photos / "00_astronaut.png").read_bytes())
    listing.write_text(f"# my images\nlocal.png\n\n{photos / '01_coffee.png'}\nmissing.png\n",
                       encoding="utf-8")
    out = tmp_path / "list"
    code, _, err = cli(capfd, "batch", listing, *batch_args(cards.fast), "--methods", "ablation",
                       "--out", out, "-q")
    assert (code, err) == (0, "")
    coffee = str(photos / "01_coffee.png").lstrip("/")
    assert sorted(image_folders(out)) == sorted(["local.png", coffee])
    errors = pcsv.read_csv(out / "errors.csv").to_pylist()
    assert [e["image"] for e in errors] == ["missing.png"]
    assert "does not exist" in errors[0]["error"]


@pytest.mark.parametrize("args, fragment", [
    (["batch", "{tmp}/nowhere", "--out", "{tmp}/o"], "does not exist"),
    (["batch", "{tmp}/*.nothing", "--out", "{tmp}/o"], "holds no files"),
    (["batch", "{photos}", "--out", "{photos}/00_astronaut.png"], "is a file"),
    (["batch", "{photos}", "--out", "{tmp}/o", "--methods", "magic"], "Unknown method"),
    (["batch", "{photos}", "--out", "{tmp}/o", "--address", "auto"], "--engine ray"),
    (["batch", "{photos}", "--out", "{tmp}/o", "--actors", "2"], "--engine ray"),
    (["batch", "{photos}", "--out", "{tmp}/o", "--layer", "body.nope"], "does not exist"),
])
def test_usage_problems_are_one_line(photos, cards, tmp_path, capfd, args, fragment):
    filled = [a.format(tmp=tmp_path, photos=photos) for a in args]
    code, _, err = cli(capfd, *filled, *batch_args(cards.fast), "-q")
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("segexplorer: error: "), err
    assert fragment.lower() in err.lower()
    assert not (tmp_path / "o" / "journal.jsonl").exists()


# --------------------------------------------------------------------------- resuming


def test_a_second_run_repeats_nothing_and_takes_new_images(reference, photos, cards, tmp_path,
                                                           capfd):
    out = shutil.copytree(reference, tmp_path / "out")
    before = {k: p.stat().st_mtime_ns for k, p in image_folders(out).items()}
    code, stdout, _ = cli(capfd, "batch", photos, *batch_args(cards.fast), "--out", out)
    assert code == 0
    assert "0 images explained" in stdout and "8 done before" in stdout
    assert {k: p.stat().st_mtime_ns for k, p in image_folders(out).items()} == before
    assert_same_outputs(out, reference)
    extra = shutil.copytree(photos, tmp_path / "grown")
    (extra / "new.png").write_bytes((photos / "01_coffee.png").read_bytes())
    # another input is another run: refused in this folder ...
    code, _, err = cli(capfd, "batch", extra, *batch_args(cards.fast), "--out", out)
    assert code == 1 and "other arguments" in err and "INPUT" in err
    # ... but the same folder that grew is continued: only the new image is explained
    shutil.copy(photos / "01_coffee.png", photos / "zz_new.png")
    try:
        code, stdout, _ = cli(capfd, "batch", photos, *batch_args(cards.fast), "--out", out)
        assert code == 0 and "1 image explained" in stdout and "8 done before" in stdout
        assert len(journal_keys(out)) == 9 == len(set(journal_keys(out)))
    finally:
        (photos / "zz_new.png").unlink()


@pytest.mark.parametrize("change, flag", [
    (["--size", "40"], "--size"),
    (["--methods", "gradcam"], "--methods"),
    (["--segments", "component"], "--segments"),
    (["--fast"], "--fast"),
    (["--weights", "untrained"], "--weights"),
])
def test_other_arguments_in_the_same_folder_are_refused_in_one_line(
        reference, photos, cards, capfd, change, flag):
    journal = (reference / "journal.jsonl").read_bytes()
    code, out, err = cli(capfd, "batch", photos, *batch_args(cards.fast), *change,
                         "--out", reference)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "other arguments" in lines[0] and flag in lines[0], err
    assert (reference / "journal.jsonl").read_bytes() == journal


def test_the_device_may_change_between_runs(reference, photos, cards, tmp_path, capfd):
    out = shutil.copytree(reference, tmp_path / "out")
    code, stdout, _ = cli(capfd, "batch", photos, "--model", cards.fast, "--device", "auto",
                          "--out", out)
    assert code == 0 and "8 done before" in stdout


def test_a_torn_journal_line_is_cut_off_and_that_image_done_again(reference, photos, cards,
                                                                  tmp_path, capfd):
    out = shutil.copytree(reference, tmp_path / "out")
    data = (out / "journal.jsonl").read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    torn_key = json.loads(data[last:])["key"]
    (out / "journal.jsonl").write_bytes(data[: last + (len(data) - last) // 2])  # half a line
    journal = Journal.open(out, repair=False)
    assert journal.repaired and torn_key not in journal.done() and len(journal.done()) == 7
    code, stdout, _ = cli(capfd, "batch", photos, *batch_args(cards.fast), "--out", out)
    assert code == 0 and "1 image explained" in stdout
    assert_same_outputs(out, reference)


def test_a_second_writer_is_refused(reference, photos, cards, tmp_path, capfd):
    from filelock import FileLock

    out = shutil.copytree(reference, tmp_path / "out")
    with FileLock(str(out / ".lock")):
        code, _, err = cli(capfd, "batch", photos, *batch_args(cards.fast), "--out", out)
    assert code == 1 and "Another batch is writing" in err


def test_cancel_between_images_keeps_a_consistent_folder(photos, cards, tmp_path, reference):
    class CancelAfter(NullState):
        def __init__(self, images: int) -> None:
            self.images = images
            self.checks = 0

        def is_cancelled(self) -> bool:
            return len(journal_keys(out)) >= self.images

    out = tmp_path / "out"
    request = ExplainRequest(image="", model=str(cards.fast), device="cpu")
    options = BatchOptions(str(photos), str(out), request, writers=3)
    from segexplorer.engine.errors import Cancelled

    with pytest.raises(Cancelled):
        run_batch(options, state=CancelAfter(3))
    # nothing is committed once the stop was asked (the writer threads' images in
    # flight are dropped, and done again by the next run)
    assert len(journal_keys(out)) == 3
    assert set(journal_keys(out)) == set(image_folders(out))
    summary = pq.read_table(out / "summary.parquet").to_pylist()
    assert {r["image"] for r in summary} == set(journal_keys(out))  # tables written anyway
    report = run_batch(options)
    assert (report.done_before, report.explained) == (3, 5)
    assert_same_outputs(out, reference)


# --------------------------------------------------------------------------- killed


KILLABLE = """
import os, sys, time
import torch
torch.set_num_threads(int(os.environ["BATCH_TEST_THREADS"]))  # as the reference run had
real_fsync = os.fsync
def slow_fsync(fd):  # every file and journal line takes a while: kills land mid-write
    time.sleep(float(os.environ["BATCH_TEST_FSYNC_DELAY"]))
    real_fsync(fd)
os.fsync = slow_fsync
from segexplorer.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env(delay: float, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["BATCH_TEST_THREADS"] = str(threads)
    env.pop("SEGEXPLORER_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["BATCH_TEST_FSYNC_DELAY"] = str(delay)
    return env


def _partial_files(out: Path) -> int:
    return sum(1 for p in (out / ".partial").glob("*/*") if p.is_file())


def test_sigkill_at_several_points_then_resume_gives_the_uninterrupted_outputs(
        reference, photos, cards, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-c", KILLABLE, "batch", str(photos), *batch_args(cards.fast),
               "--out", str(out), "-q"]
    expected_files = {k: sorted(p.name for p in f.iterdir())
                      for k, f in image_folders(reference).items()}
    some_report = json.loads(next(iter(image_folders(reference).values()))
                             .joinpath("report.json").read_text("utf-8"))
    threads = int(some_report["device"].split("(")[1].split()[0])  # 'cpu (2 threads)'

    points = [
        ("inside the first image's files", lambda: _partial_files(out) >= 3),
        ("after two images", lambda: len(journal_keys(out)) >= 2),
        ("inside a later image", lambda: len(journal_keys(out)) >= 4
         and _partial_files(out) >= 1),
    ]
    seen_half_written = False
    for name, reached in points:
        proc = subprocess.Popen(command, env=_env(0.02, threads), cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not reached() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert proc.poll() is None, f"the batch ended before '{name}': {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen_half_written |= _partial_files(out) > 0
        if name == points[0][0]:
            assert journal_keys(out) == []  # killed before any image was done
        # whatever the moment, every image folder in place is complete, and every image
        # in the journal has its folder
        root = out / "images"
        for folder in (root.rglob("*") if root.exists() else ()):
            files = sorted(p.name for p in folder.iterdir() if p.is_file()) \
                if folder.is_dir() else []
            if files:
                key = folder.relative_to(root).as_posix()
                assert files == expected_files[key], (name, key)
        assert set(journal_keys(out)) <= set(image_folders(out))
    assert seen_half_written  # a kill did land inside an image's files
    # resumed (here, in this process: what matters is what the killed runs left)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert main(["batch", str(photos), *batch_args(cards.fast), "--out", str(out),
                     "-q"]) == 0
    finally:
        torch.set_num_threads(before)
    assert_same_outputs(out, reference)


def _writing_now(out: Path) -> int:
    """Image folders being written at this moment (under .partial/, with a file)."""
    root = out / ".partial"
    try:
        return sum(1 for d in root.iterdir() if d.is_dir() and any(d.iterdir()))
    except OSError:  # renamed away meanwhile
        return 0


def test_sigkill_while_several_writer_threads_write_then_resume_gives_the_same_outputs(
        reference, photos, cards, tmp_path):
    """Three writer threads, each inside an image's files, when the batch is killed."""
    out = tmp_path / "killed"
    command = [sys.executable, "-c", KILLABLE, "batch", str(photos), *batch_args(cards.fast),
               "--writers", "3", "--out", str(out), "-q"]
    some_report = json.loads(next(iter(image_folders(reference).values()))
                             .joinpath("report.json").read_text("utf-8"))
    threads = int(some_report["device"].split("(")[1].split()[0])
    proc = subprocess.Popen(command, env=_env(0.03, threads), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _writing_now(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    assert proc.poll() is None, f"the batch ended before two writers wrote at once: " \
                                f"{proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _partial_files(out) >= 2  # killed inside at least two images' files
    done = set(journal_keys(out))
    assert done <= set(image_folders(out))  # every journal line has its whole folder
    for key, folder in image_folders(out).items():
        assert sorted(p.name for p in folder.iterdir()) == \
            sorted(p.name for p in image_folders(reference)[key].iterdir())
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert main(["batch", str(photos), *batch_args(cards.fast), "--writers", "3",
                     "--out", str(out), "-q"]) == 0
    finally:
        torch.set_num_threads(before)
    assert_same_outputs(out, reference)


# --------------------------------------------------------------------------- progress


class _Tty:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_in_a_log():
    tty = _Tty()
    bar = TerminalProgress(tty)  # type: ignore[arg-type]
    bar.start(4, 2)
    for ok in (True, False, True, True):
        bar.advance(ok)
    bar.close()
    assert "4/4" in tty.text and "img/s" in tty.text and "1 error" in tty.text
    assert "\r" in tty.text  # redrawn in place
    log = _Tty()
    lines = LogProgress(log, interval=0.0)  # type: ignore[arg-type]
    lines.start(3, 1)
    for ok in (True, True, False):
        lines.advance(ok)
    lines.close()
    assert "\r" not in log.text
    text = log.text.splitlines()
    assert text[0] == "batch: 3 images to explain, 1 done before"
    assert text[-1].startswith("batch: 3/3 images, 1 error (+1 done before), ")
    assert "images/s, ETA 0s" in text[-1]
    assert all(math.isfinite(float(t.split(", ")[-2].split()[0])) for t in text[1:])


def test_the_ray_engine_without_ray_installed_is_one_line(photos, cards, tmp_path, capfd,
                                                          monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    out = tmp_path / "o"
    code, _, err = cli(capfd, "batch", photos, *batch_args(cards.fast), "--engine", "ray",
                       "--out", out)
    assert code == 1 and err == ("segexplorer: error: --engine ray needs Ray: pip install "
                                 "'segexplorer[ray]' (or 'ray[data]'), or use the local "
                                 "engine.\n")
    assert not out.exists()  # refused before the output folder is made


def test_a_model_that_cannot_load_leaves_no_output_folder(photos, tmp_path, capfd):
    out = tmp_path / "o"
    code, _, err = cli(capfd, "batch", photos, "--model", "resnet9000", "--out", out)
    assert code == 1 and "Unknown model" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_per_method_columns_follow_the_methods_explain_produced(blocks_image):
    """A method of the engine's registry (issue 15: ``result.maps[method].maps``) gets its
    summary statistics like Grad-CAM and ablation; the layer's activation gets none."""
    from dataclasses import replace

    from segexplorer.batch.analyse import class_maps, image_rows
    from segexplorer.engine.analysis import explain
    from segexplorer.engine.results import MethodMaps

    result = explain(ExplainRequest(image=str(blocks_image), model="tiny", weights="untrained",
                                    device="cpu", size=32))
    occlusion = {c: np.where(result.prediction.class_map == c, 1.0, 0.25)
                 for c in result.targets}
    extended = replace(result, methods=(*result.methods, "occlusion"),
                       maps={**result.maps, "occlusion": MethodMaps("occlusion", occlusion, {},
                                                                    ())})
    assert set(class_maps(extended)) == {"gradcam", "ablation", "occlusion"}
    scores = np.zeros(len(result.prediction.categories))
    for row in image_rows("blocks.png", extended, scores):
        own = result.prediction.class_map == row["class_index"]
        share = 0.25 * (~own).sum() / (own.sum() + 0.25 * (~own).sum())
        assert row["methods"]["occlusion"]["outside_share"] == pytest.approx(share)
        assert "activation" not in row["methods"]
