"""The batch's pipeline (issue 21): writer threads behind the model, ``--outputs``, the
tables independent of the order images finish in, the progress figures.

The model is the six-class network of tests/batch_models.py; images are small crops of
scikit-image's photos, so a batch takes a few seconds.
"""

from __future__ import annotations

import json
import shutil
import threading
import time

import numpy as np
import pytest
from batch_models import (
    assert_same_image_files,
    assert_same_outputs,
    image_folders,
    journal_keys,
    photo_folder,
    report_without_timings,
    write_cards,
)

from segexplorer.batch.pipeline import WritePool
from segexplorer.batch.progress import ProgressSnapshot, RateMeter, StateProgress
from segexplorer.batch.summary import load_dataset
from segexplorer.batch.tables import OUTPUT_FILES, write_tables
from segexplorer.cli import main
from segexplorer.engine.jobs import NullState
from segexplorer.export.bundle import library_versions
from segexplorer.export.outputs import OUTPUT_CHOICES, PARTS


@pytest.fixture(scope="module")
def cards(tmp_path_factory):
    return write_cards(tmp_path_factory.mktemp("pipeline_cards"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return photo_folder(tmp_path_factory.mktemp("pipeline_photos") / "photos", count=5)


def batch(photos, cards, out, *extra) -> int:
    return main(["batch", str(photos), "--model", str(cards.fast), "--device", "cpu",
                 "--out", str(out), "-q", *[str(e) for e in extra]])


@pytest.fixture(scope="module")
def full(tmp_path_factory, photos, cards):
    """A batch with every file (the default), one writer thread."""
    out = tmp_path_factory.mktemp("pipeline_full") / "out"
    assert batch(photos, cards, out, "--writers", "1") == 0
    return out


# --------------------------------------------------------------------------- the pool


def test_the_write_pool_keeps_at_most_depth_images_in_flight():
    """However many images come, at most ``depth`` are waiting or being written: the model
    waits for a writer instead of piling results up in memory."""
    in_flight, peak, results, threads = [0], [0], [], set()
    lock = threading.Lock()

    def work(i: int) -> int:
        time.sleep(0.002 * (i % 3))  # some finish before others
        return i * i

    def done(value: int) -> None:
        threads.add(threading.get_ident())
        results.append(value)
        with lock:
            in_flight[0] -= 1

    with WritePool(work, done, workers=2, depth=3) as pool:
        for i in range(40):
            pool.submit(i)
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            assert pool.in_flight <= 3
    assert sorted(results) == [i * i for i in range(40)]  # each exactly once
    assert threads == {threading.get_ident()}  # told on the submitting thread
    assert peak[0] <= 4  # 3 in flight, and the one just submitted before it was counted


def test_a_writer_error_reaches_the_model_thread_after_the_others_are_written():
    written = []

    def work(i: int) -> int:
        if i == 2:
            raise OSError("disk full")
        time.sleep(0.01)
        return i

    with pytest.raises(OSError, match="disk full"), WritePool(work, written.append, 2) as pool:
        for i in range(6):
            pool.submit(i)
    assert 2 not in written and {0, 1} <= set(written)


def test_an_interrupt_tells_the_writers_to_give_up_and_waits_for_them():
    """Ctrl+C or a cancel: the images in flight are not committed (the batch's writers
    read ``stopping``), and the pool returns only once its threads are done."""
    told = []
    pools = []

    def work(i: int) -> int | None:  # a long write that looks at the stop between files
        return None if pools[0].stopping.wait(10) else i

    with pytest.raises(KeyboardInterrupt), WritePool(work, told.append, 2) as pool:
        pools.append(pool)
        for i in range(3):
            pool.submit(i)
        raise KeyboardInterrupt
    assert told == [None, None, None] and pool.in_flight == 0


# --------------------------------------------------------------------------- --outputs


def _parts_of(name: str) -> str:
    if name == "report.json":
        return "report"
    if name == "attributions.npz":
        return "arrays"
    return "segmentation" if name == "segmentation.png" else "maps"


@pytest.mark.parametrize("choice", [c for c in OUTPUT_CHOICES if c != "full"])
def test_each_outputs_choice_writes_its_subset_of_the_full_files_unchanged(
        choice, photos, cards, full, tmp_path):
    out = tmp_path / choice
    assert batch(photos, cards, out, "--outputs", choice, "--writers", "2") == 0
    parts = OUTPUT_CHOICES[choice]
    assert set(parts) <= set(PARTS) and "report" in parts
    ours, theirs = image_folders(out), image_folders(full)
    assert sorted(ours) == sorted(theirs)
    for key, folder in theirs.items():
        expected = sorted(p.name for p in folder.iterdir() if _parts_of(p.name) in parts)
        assert sorted(p.name for p in ours[key].iterdir()) == expected
        for name in expected:
            a, b = ours[key] / name, folder / name
            if name.endswith(".png"):
                assert a.read_bytes() == b.read_bytes(), name  # the same encoding too
            elif name.endswith(".npz"):
                with np.load(a) as za, np.load(b) as zb:
                    assert sorted(za.files) == sorted(zb.files)
                    for array in za.files:
                        assert za[array].dtype == zb[array].dtype
                        assert np.array_equal(za[array], zb[array]), array
            else:
                assert report_without_timings(a) == report_without_timings(b)
    # the dataset's tables do not depend on the files: they come from the journal
    for name in OUTPUT_FILES:
        if name.endswith(".csv"):
            assert (out / name).read_bytes() == (full / name).read_bytes(), name
    assert json.loads((out / "run.json").read_text())["arguments"]["outputs"] == choice


def test_other_outputs_into_the_same_folder_are_refused_and_an_old_record_means_full(
        photos, cards, full, tmp_path, capfd):
    out = shutil.copytree(full, tmp_path / "out")
    capfd.readouterr()
    assert batch(photos, cards, out, "--outputs", "arrays") == 1
    err = capfd.readouterr().err
    assert "other arguments" in err and "--outputs full there, arrays here" in err
    # a folder written before --outputs existed holds every file: it continues as 'full'
    record = json.loads((out / "run.json").read_text())
    del record["arguments"]["outputs"]
    (out / "run.json").write_text(json.dumps(record))
    assert batch(photos, cards, out) == 0
    assert batch(photos, cards, out, "--outputs", "report") == 1


def test_what_does_not_change_per_image_is_computed_once(photos, cards, tmp_path):
    library_versions()  # computed once in this process ...
    before = library_versions.cache_info()
    assert batch(photos, cards, tmp_path / "out", "--outputs", "report") == 0
    after = library_versions.cache_info()
    assert after.misses == before.misses and after.hits >= before.hits + 5  # ... not per image
    versions = {json.dumps(report_without_timings(f / "report.json")["versions"])
                for f in image_folders(tmp_path / "out").values()}
    assert len(versions) == 1


# --------------------------------------------------------------------------- order


def test_the_tables_do_not_depend_on_the_order_images_finished_in(full, tmp_path):
    """Writer threads commit images as they finish: the journal's order varies from run
    to run, the tables do not."""
    out = shutil.copytree(full, tmp_path / "out")
    lines = (out / "journal.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) == 5
    (out / "journal.jsonl").write_bytes(b"".join(reversed(lines)))
    for name in OUTPUT_FILES:
        (out / name).unlink()
    write_tables(load_dataset(out))
    assert_same_outputs(out, full)
    with_pngs = [name for name in OUTPUT_FILES if name.endswith(".png")]
    for name in with_pngs:
        assert (out / name).read_bytes() == (full / name).read_bytes(), name


def test_more_writers_than_images_give_the_same_folder(photos, cards, full, tmp_path):
    out = tmp_path / "out"
    assert batch(photos, cards, out, "--writers", "8") == 0
    assert_same_outputs(out, full)
    for key, folder in image_folders(out).items():
        assert_same_image_files(folder, image_folders(full)[key])
    assert sorted(journal_keys(out)) == sorted(journal_keys(full))


@pytest.mark.parametrize("value", ["0", "-2"])
def test_writers_below_one_are_refused_in_one_line(photos, cards, tmp_path, capfd, value):
    capfd.readouterr()
    assert batch(photos, cards, tmp_path / "o", "--writers", value) == 1
    err = capfd.readouterr().err
    assert err == f"segexplorer: error: --writers {value}: use at least 1.\n"
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_follows_the_recent_images_and_the_eta_is_the_rest_at_that_rate():
    clock = Clock()
    meter = RateMeter(clock, window=5, seconds=60.0)
    assert meter.rate() is None  # nothing finished yet
    for _ in range(10):  # one image a second ...
        clock.now += 1.0
        meter.tick()
    assert meter.rate() == pytest.approx(1.0)
    for _ in range(5):  # ... then two a second: the window holds only these
        clock.now += 0.5
        meter.tick()
    assert meter.rate() == pytest.approx(2.0)
    clock.now += 61.0  # nothing for a minute: no recent image, no rate
    assert meter.rate() is None


def test_the_progress_snapshot_says_done_rate_and_time_left():
    clock = Clock()

    class Recorder(NullState):
        def __init__(self) -> None:
            self.calls: list[tuple[int, int, str]] = []

        def set_progress(self, done: int, total: int, message: str = "") -> None:
            self.calls.append((done, total, message))

    state = Recorder()
    progress = StateProgress(state, clock)
    progress.start(10, 4)
    first = progress.snapshot()
    assert (first.done, first.total, first.before) == (0, 10, 4)
    assert first.images_per_second is None and first.eta_s is None
    assert first.line() == "batch: 0/10 images (+4 done before), ? images/s, ETA ?"
    for ok in (True, True, False, True):
        clock.now += 0.5
        progress.advance(ok)
    snap = progress.snapshot()
    assert snap == ProgressSnapshot(done=4, total=10, errors=1, before=4, elapsed_s=2.0,
                                    images_per_second=2.0, eta_s=3.0)
    assert snap.fraction == pytest.approx(0.4)
    assert snap.line() == "batch: 4/10 images, 1 error (+4 done before), 2.00 images/s, ETA 3s"
    assert state.calls[-1] == (4, 10, snap.line())  # the window's job gets the same line
    for _ in range(6):
        clock.now += 0.5
        progress.advance(True)
    assert progress.snapshot().eta_s == 0.0 and progress.snapshot().eta_text() == "ETA 0s"
