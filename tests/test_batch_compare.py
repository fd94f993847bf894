"""``segexplorer batch INPUT --model A --with B``: compare's files per image, the
comparison table (comparison.parquet / .csv) with compare.json's figures, resuming after
a kill, and the refusals (one line, exit 1, nothing written).

A is the batch tests' six-class card (tests/batch_models.py), B the same card with its
classifier's 'car' row scaled (weights and bias x 1.5), as a fine-tuning might leave it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import torch
from batch_models import journal_keys, photo_folder, write_cards
from test_batch import KILLABLE, _env

from segexplorer.batch.comparison import BASE_COLUMNS, STATISTICS
from segexplorer.batch.summary import load_dataset
from segexplorer.cli import main
from segexplorer.engine.models import load_model

CAR = 3  # the class whose classifier row B scales


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(A's card, B's weights, a card whose classes A does not know, the photos)."""
    root = tmp_path_factory.mktemp("batch_compare")
    cards = write_cards(root / "cards")
    state = load_model(str(cards.fast), None, "cpu").module.state_dict()
    state["head.weight"][CAR] *= 1.5
    state["head.bias"][CAR] *= 1.5
    weights = root / "car_x1.5.pt"
    torch.save(state, weights)
    strangers = root / "cards" / "strangers.toml"
    strangers.write_text(cards.fast.read_text("utf-8").replace(
        '"background", "sky", "road", "car", "person", "tree"',
        '"water", "stone", "sand", "moss", "ice", "snow"'), encoding="utf-8")
    photos = photo_folder(root / "photos", count=4)
    return cards.fast, weights, strangers, photos


def batch(photos: Path, card: Path, weights: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", str(photos), "--model", str(card), "--with", str(card),
            "--with-weights", str(weights), "--device", "cpu", "--gpu-memory", "1",
            "--methods", "gradcam,ablation", "--outputs", "report", "--out", str(out),
            "-q", *extra]


@pytest.fixture(scope="module")
def reference(pair, tmp_path_factory):
    card, weights, _strangers, photos = pair
    out = tmp_path_factory.mktemp("batch_compare_ref") / "out"
    assert main(batch(photos, card, weights, out)) == 0
    return out


def _compare_json(out: Path, key: str) -> dict:
    report = json.loads((out / "images" / key / "compare.json").read_text("utf-8"))
    report.pop("versions")
    return report


def test_each_image_gets_compare_s_files_and_the_table_has_compare_json_s_figures(reference):
    keys = sorted(journal_keys(reference))
    assert len(keys) == 4
    for key in keys:
        folder = reference / "images" / key
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                       if p.is_file())
        assert names == ["a/report.json", "b/report.json", "compare.json"]  # --outputs report
    table = pq.read_table(reference / "comparison.parquet")
    methods = ("gradcam", "ablation")
    assert tuple(table.column_names) == BASE_COLUMNS + tuple(
        f"{m}_{s}" for m in methods for s in STATISTICS)
    assert pcsv.read_csv(reference / "comparison.csv").num_rows == table.num_rows
    rows = table.to_pylist()
    for key in keys:
        report = _compare_json(reference, key)
        mine = [r for r in rows if r["image"] == key]
        assert len(mine) == len(report["per_class"])
        for expected in report["per_class"]:
            row = next(r for r in mine if r["class"] == expected["class"])
            for name in ("share_a", "share_b", "pixels_a", "pixels_b", "iou", "change",
                         "score_a", "score_b", "index_a", "index_b", "known_to"):
                assert row[name] == expected[name], (key, expected["class"], name)
            for method in methods:
                stats = expected["maps"].get(method, {})
                for stat in STATISTICS:
                    assert row[f"{method}_{stat}"] == stats.get(stat), (key, method, stat)
            assert row["changed_share"] == report["pixels_changed"]["share"]
    # pixels change only to or from the scaled class, and every image's other shared
    # classes whose masks did not move keep their scores
    for row in rows:
        if row["iou"] == 1.0 and row["class"] != "car":
            assert row["score_a"] == row["score_b"], row
    # the summary is A's: the same rows as a/report.json's classes
    summary = pq.read_table(reference / "summary.parquet").to_pylist()
    for key in keys:
        a_report = json.loads((reference / "images" / key / "a" / "report.json")
                              .read_text("utf-8"))
        classes = sorted(a_report["present_classes"])
        assert sorted(r["class_index"] for r in summary if r["image"] == key) == classes


def test_the_dataset_orders_images_by_their_share_of_changed_pixels(reference):
    dataset = load_dataset(reference)
    assert dataset.comparison is not None
    ranked = dataset.comparison.by_disagreement()
    shares = [share for _key, share in ranked]
    assert shares == sorted(shares, reverse=True) and len(ranked) == 4
    for key, share in ranked:
        assert share == _compare_json(reference, key)["pixels_changed"]["share"]
    assert any(share > 0 for share in shares)  # the scaled row changed some pixels


def test_a_killed_comparison_batch_continues_where_it_stopped(pair, reference, tmp_path):
    card, weights, _strangers, photos = pair
    out = tmp_path / "killed"
    command = [sys.executable, "-c", KILLABLE, *batch(photos, card, weights, out)]
    threads = torch.get_num_threads()
    proc = subprocess.Popen(command, env=_env(0.05, threads), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while len(journal_keys(out)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, f"the batch ended before two images: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = journal_keys(out)
    assert 2 <= len(done) < 4
    stamps = {k: (out / "images" / k / "compare.json").stat().st_mtime_ns for k in done}
    assert main(batch(photos, card, weights, out)) == 0
    assert sorted(journal_keys(out)) == sorted(journal_keys(reference))
    assert len(journal_keys(out)) == 4  # no image twice
    for key in done:  # the images done before the kill were not done again
        assert (out / "images" / key / "compare.json").stat().st_mtime_ns == stamps[key]
    assert pq.read_table(out / "comparison.parquet").equals(
        pq.read_table(reference / "comparison.parquet"))
    assert (out / "comparison.csv").read_bytes() == (reference / "comparison.csv").read_bytes()
    for key in journal_keys(reference):
        assert _compare_json(out, key) == _compare_json(reference, key)
    assert not list(out.rglob("*.tmp")) and not any((out / ".partial").glob("*"))


def _refused(capfd, args: list[str], words: str, out: Path) -> None:
    capfd.readouterr()
    code = main(args)
    err = capfd.readouterr().err.strip()
    assert code == 1, err
    assert err.count("\n") == 0 and err.startswith("segexplorer: error:"), err
    assert words in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_comparison_on_ray_is_refused_in_one_line(pair, tmp_path, capfd):
    card, weights, _strangers, photos = pair
    out = tmp_path / "out"
    _refused(capfd, [*batch(photos, card, weights, out), "--engine", "ray"],
             "--with runs on the local engine only", out)


def test_b_s_options_without_with_are_refused(pair, tmp_path, capfd):
    card, weights, _strangers, photos = pair
    out = tmp_path / "out"
    _refused(capfd, ["batch", str(photos), "--model", str(card), "--with-weights",
                     str(weights), "--out", str(out)], "--with-weights is for model B", out)


def test_bad_pairs_are_refused_in_one_line_with_nothing_written(pair, tmp_path, capfd):
    card, weights, strangers, photos = pair
    out = tmp_path / "out"
    strange = batch(photos, card, weights, out)
    strange[strange.index("--with") + 1] = str(strangers)
    strange.remove("--with-weights")
    strange.remove(str(weights))
    _refused(capfd, strange, "no class name in common", out)
    missing = batch(photos, card, tmp_path / "missing.pt", out)
    _refused(capfd, missing, "B (--with", out)
    tight = batch(photos, card, weights, out)
    tight[tight.index("--gpu-memory") + 1] = repr(4 / 2**20)  # a 4 KiB budget
    _refused(capfd, tight, "do not fit on cpu", out)


def test_continuing_with_another_model_b_is_refused(pair, reference, tmp_path, capfd):
    card, _weights, _strangers, photos = pair
    out = tmp_path / "out"
    assert main(["batch", str(photos), "--model", str(card), "--with", str(card),
                 "--device", "cpu", "--methods", "gradcam", "--outputs", "report",
                 "--out", str(out), "-q", "--gpu-memory", "1"]) == 0
    # a model compared with itself: the same masks, scores and maps on every image
    for row in pq.read_table(out / "comparison.parquet").to_pylist():
        assert row["iou"] == 1.0 and row["changed_share"] == 0.0
        assert row["score_a"] == row["score_b"]
        assert row["gradcam_spearman"] is None or row["gradcam_spearman"] == pytest.approx(1)
        assert row["gradcam_max_abs_difference"] == 0
    capfd.readouterr()
    assert main(["batch", str(photos), "--model", str(card), "--device", "cpu",
                 "--methods", "gradcam", "--outputs", "report", "--out", str(out)]) == 1
    err = capfd.readouterr().err
    assert "--with" in err and "there, (default) here" in err
