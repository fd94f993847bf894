"""``segexplorer batch --engine ray`` on a local Ray with 2 CPUs (one per test session):
the same files as the local engine, resumable from the same journal.

Few and small on purpose: Ray's start and a Ray Data pipeline cost seconds each.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager

import pytest
import torch
from batch_models import assert_same_outputs, journal_keys, photo_folder, write_cards

from segexplorer.batch.run import BatchOptions, run_batch
from segexplorer.cli import main
from segexplorer.engine.analysis import ExplainRequest
from segexplorer.engine.errors import Cancelled, UserError
from segexplorer.engine.jobs import NullState

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_batch")
    cards = write_cards(root / "cards")
    photos = photo_folder(root / "photos", count=6)
    local = root / "local"
    with actor_threads():
        assert main(["batch", str(photos), "--model", str(cards.fast), "--device", "cpu",
                     "--out", str(local), "-q"]) == 0
    return cards, photos, local


@contextmanager
def actor_threads():
    """Torch threads as the Ray actor has them (2 CPUs, one actor), so that the local
    engine's reports equal the actor's, 'cpu (2 threads)' included."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_ray_continues_a_local_run_and_writes_what_the_local_engine_writes(
        ray_local, setup, tmp_path, capsys):
    """Two images by the local engine (then stopped), four by Ray: the same files, tables
    and journal as the uninterrupted local run."""
    cards, photos, local = setup
    out = tmp_path / "mixed"
    request = ExplainRequest(image="", model=str(cards.fast), device="cpu")

    class StopAfterTwo(NullState):
        def is_cancelled(self) -> bool:
            return len(journal_keys(out)) >= 2

    with pytest.raises(Cancelled), actor_threads():
        run_batch(BatchOptions(str(photos), str(out), request, writers=2),
                  state=StopAfterTwo())
    code = main(["batch", str(photos), "--model", str(cards.fast), "--device", "cpu",
                 "--engine", "ray", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0 and "4 images explained" in stdout and "2 done before" in stdout
    assert_same_outputs(out, local)
    assert json.loads((out / "run.json").read_text())["engine"] == "ray"
    # once done, another Ray run repeats nothing
    again = run_batch(BatchOptions(str(photos), str(out), request, engine="ray", actors=1))
    assert (again.done_before, again.explained) == (6, 0)


def test_a_model_that_cannot_load_on_the_actors_is_one_line(ray_local, setup, tmp_path):
    cards, photos, _ = setup
    broken = tmp_path / "broken.toml"
    broken.write_text(cards.fast.read_text().replace("delay = 0.0", "delay = 0.0, nope = 1"))
    shutil.copy(cards.fast.parent / "six_factory.py", tmp_path / "six_factory.py")
    request = ExplainRequest(image="", model=str(broken), device="cpu")
    with pytest.raises(UserError) as info:
        run_batch(BatchOptions(str(photos), str(tmp_path / "o"), request, engine="ray"))
    assert "nope" in str(info.value) and "\n" not in str(info.value)


def test_ray_actors_write_through_the_same_pipeline_and_outputs(ray_local, setup, tmp_path):
    """Each actor explains with writer threads behind its model (two here), for any
    --outputs: the files are those the local engine writes."""
    cards, photos, _ = setup
    local, distributed = tmp_path / "local", tmp_path / "ray"
    common = ["batch", str(photos), "--model", str(cards.fast), "--device", "cpu",
              "--outputs", "arrays", "--writers", "2", "-q"]
    with actor_threads():
        assert main([*common, "--out", str(local)]) == 0
    assert main([*common, "--engine", "ray", "--out", str(distributed)]) == 0
    assert_same_outputs(distributed, local)
    files = {p.name for p in distributed.glob("images/**/*") if p.is_file()}
    assert files == {"report.json", "attributions.npz"}
