"""The dataset window's document without Qt: a batch folder as table, tiles and context
matrix; sorting, filtering, picking a cell; opening an image with the batch's model;
running a batch as a job (with the synchronous QueueRunner)."""

from __future__ import annotations

import json
import math

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from batch_models import photo_folder, write_cards

from segexplorer.batch.summary import load_dataset
from segexplorer.cli import main
from segexplorer.gui.document.choices import AnalysisChoice, ModelChoice
from segexplorer.gui.document.dataset import BATCH, BatchSettings, DatasetState
from segexplorer.gui.document.dataset_view import dataset_view, percent
from segexplorer.gui.document.runner import QueueRunner


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset_document")
    cards = write_cards(root / "cards")
    photos = photo_folder(root / "photos", count=6)
    (photos / "broken.png").write_bytes(b"not a picture")
    out = root / "out"
    assert main(["batch", str(photos), "--model", str(cards.fast), "--device", "cpu",
                 "--out", str(out), "-q"]) == 0
    return cards, photos, out


def opened(out) -> tuple[DatasetState, QueueRunner]:
    runner = QueueRunner()
    doc = DatasetState.on(runner)
    doc.open_folder(out)
    assert runner.run_until_idle() == 1
    return doc, runner


def test_the_table_holds_every_image_and_class_with_its_figures(batch):
    _, _, out = batch
    doc, _ = opened(out)
    view = dataset_view(doc)
    summary = pq.read_table(out / "summary.parquet").to_pylist()
    assert view.loaded and len(view.rows) == len(summary)
    assert view.summary.startswith("6 images explained, 1 could not be - six_fast.toml (card)")
    keys = [c.key for c in view.columns]
    assert keys == ["image", "class", "share", "score", "gradcam_outside_share",
                    "ablation_outside_share", "context"]
    by_key = {(r["image"], r["class_index"]): r for r in summary}
    for row in view.rows:
        expected = by_key[(row.image, row.class_index)]
        texts = dict(zip(keys, row.texts))
        assert texts["image"] == row.image and texts["class"] == expected["class"]
        assert texts["share"] == percent(expected["share"])
        assert texts["gradcam_outside_share"] == percent(expected["gradcam_outside_share"])
    assert [image for image, _ in view.errors] == ["broken.png"]
    assert view.class_choices[0] == (None, "Every class")


def test_sorting_by_a_figure_and_showing_one_class(batch):
    _, _, out = batch
    doc, _ = opened(out)
    summary = {(r["image"], r["class_index"]): r
               for r in pq.read_table(out / "summary.parquet").to_pylist()}
    doc.sort_by("gradcam_outside_share")
    view = dataset_view(doc)
    assert view.sort == ("gradcam_outside_share", True)
    values = [summary[(r.image, r.class_index)]["gradcam_outside_share"] for r in view.rows]
    known = [v for v in values if v is not None]
    assert known == sorted(known, reverse=True)
    assert all(v is None for v in values[len(known):])  # missing values last
    doc.sort_by("gradcam_outside_share")  # again: the other way
    values = [summary[(r.image, r.class_index)]["gradcam_outside_share"]
              for r in dataset_view(doc).rows]
    known = [v for v in values if v is not None]
    assert known == sorted(known) and dataset_view(doc).sort[1] is False
    # one class: its rows only; tiles in the table's order, showing its Grad-CAM
    c, label = dataset_view(doc).class_choices[1]
    assert c is not None
    doc.set_class_filter(c)
    view = dataset_view(doc)
    assert {r.class_index for r in view.rows} == {c}
    assert label.endswith(f"({len(view.rows)})")
    assert [t.image for t in view.tiles] == [r.image for r in view.rows]
    for tile in view.tiles:
        assert tile.picture.endswith(".png") and f"gradcam_{c}_" in tile.picture
        assert "Grad-CAM outside" in tile.caption or "\n" not in tile.caption
    doc.set_class_filter(None)
    tiles = dataset_view(doc).tiles
    assert len(tiles) == 6 and all("images" not in t.picture for t in tiles)  # the photos


def test_the_heat_map_is_the_context_matrix_and_lists_the_images_behind_a_cell(batch):
    _, _, out = batch
    doc, _ = opened(out)
    heat = dataset_view(doc).heatmap
    rows = pcsv.read_csv(out / "context.csv").to_pylist()
    position = {c: i for i, c in enumerate(heat.classes)}
    assert len(heat.cells) == len(heat.classes)
    for row in rows:
        cell = heat.cells[position[row["target_index"]]][position[row["ablated_index"]]]
        assert cell is not None
        assert cell.text == f"{percent(row['mean_relative_change'], signed=True)}\n" \
                            f"n={row['images']}"
        r, _g, b = cell.color
        if row["mean_relative_change"] < -0.05:
            assert r > b  # a drop is red
        elif row["mean_relative_change"] > 0.05:
            assert b > r  # a gain is blue
    filled = sum(cell is not None for line in heat.cells for cell in line)
    assert filled == len(rows)
    target, ablated = rows[0]["target_index"], rows[0]["ablated_index"]
    doc.select_cell(target, ablated)
    heat = dataset_view(doc).heatmap
    behind = load_dataset(out).context.images(target, ablated)
    assert [key for key, _ in heat.images] == [key for key, _ in behind]
    assert heat.selected == (target, ablated)
    assert f"{len(behind)} image" in heat.caption


def test_an_image_opens_with_the_batchs_model_and_options(batch):
    cards, photos, out = batch
    doc, _ = opened(out)
    asked = []
    doc.open_requested.connect(asked.append)
    row = dataset_view(doc).rows[0]
    doc.open_image(row.image, row.class_index)
    (request,) = asked
    assert request.path == str(photos / row.image)
    assert request.model == ModelChoice(str(cards.fast.resolve()), "default", "cpu", 32, "fp32")
    assert request.analysis == AnalysisChoice("gradcam", "", "argmax", "nearest", "class", "zero")
    assert (request.target, request.card) == (row.class_index, str(cards.fast.resolve()))


def test_a_batch_runs_as_a_job_reports_each_image_and_shows_the_folder(batch, tmp_path):
    cards, photos, reference = batch
    runner = QueueRunner()
    doc = DatasetState.on(runner)
    notices, running = [], []
    doc.notice.connect(notices.append)
    doc.changed.connect(lambda _none: running.append(dataset_view(doc).running))
    model = ModelChoice(str(cards.fast), "default", "cpu", 32)
    doc.run_batch(photos, tmp_path / "out", model, AnalysisChoice())
    assert dataset_view(doc).running and runner.pending() == [BATCH]
    runner.run_until_idle()
    progress = [p for p in runner.progress if p[0] == BATCH]
    assert progress[-1][1:3] == (7, 7) and "images/s" in progress[-1][3]
    assert not dataset_view(doc).running and True in running
    assert notices[-1].startswith("Batch done: 6 images explained, 1 could not be explained")
    view = dataset_view(doc)
    assert view.loaded and len(view.rows) == len(pq.read_table(
        reference / "summary.parquet"))
    record = json.loads((tmp_path / "out" / "run.json").read_text())["arguments"]
    assert record["size"] == 32 and record["methods"] == ["gradcam", "activation", "ablation"]


def test_a_stopped_batch_shows_what_it_did_and_continues_when_run_again(batch, tmp_path):
    cards, photos, _ = batch
    runner = QueueRunner()
    doc = DatasetState.on(runner)
    out = tmp_path / "out"

    def journal_lines() -> int:
        path = out / "journal.jsonl"
        return len(path.read_text().splitlines()) if path.exists() else 0

    runner.cancel_during = lambda job: job.channel == BATCH and journal_lines() >= 3
    model = ModelChoice(str(cards.fast), "default", "cpu", 32)
    doc.run_batch(photos, out, model, AnalysisChoice())
    runner.run_until_idle()
    assert doc.last_message.startswith("Batch stopped")
    assert len(dataset_view(doc).rows) > 0 and journal_lines() == 3
    runner.cancel_during = None
    doc.run_batch(photos, out, model, AnalysisChoice())
    runner.run_until_idle()
    assert doc.last_message.startswith("Batch done: 3 images explained, 1 could not be")
    assert len({r.image for r in dataset_view(doc).rows}) == 6


def test_percent_never_shows_minus_zero():
    assert percent(-0.001, signed=True) == "0 %"
    assert percent(0.349, signed=True) == "+35 %" and percent(0.5) == "50 %"
    assert percent(None) == "" and percent(math.nan) == ""


def test_a_running_batch_s_bar_shows_images_per_second_and_the_time_left(batch, tmp_path):
    cards, photos, _ = batch
    runner = QueueRunner()
    doc = DatasetState.on(runner)
    bars = []
    doc.changed.connect(lambda _none: bars.append(dataset_view(doc).progress))
    doc.run_batch(photos, tmp_path / "out", ModelChoice(str(cards.fast), "default", "cpu", 32),
                  AnalysisChoice())
    assert dataset_view(doc).progress is None  # the model is loading: no figures yet
    runner.run_until_idle()
    shown = [b for b in bars if b is not None]
    assert shown[0].done == 0 and shown[0].total == 7
    assert shown[0].text == "0/7 images \u2013 ? images/s \u2013 ETA ?"  # before the first image
    assert [b.done for b in shown] == sorted(b.done for b in shown) and shown[-1].done == 7
    last = shown[-1]
    rate = float(last.text.split(" \u2013 ")[1].split()[0])
    assert rate > 0 and last.text.endswith("ETA 0s")  # done: nothing left
    middle = next(b for b in shown if 0 < b.done < 7)
    assert "images/s" in middle.text and "ETA ?" not in middle.text
    assert middle.line.startswith(f"batch: {middle.done}/7 images")


def test_run_batch_uses_the_methods_classes_and_size_chosen_not_the_main_window_s(
        batch, tmp_path):
    cards, photos, _ = batch
    runner = QueueRunner()
    doc = DatasetState.on(runner)
    main_window_model = ModelChoice(str(cards.fast), "default", "cpu", 64)
    proposal = doc.batch_proposal(main_window_model, AnalysisChoice(), str(photos))
    assert not proposal.continuing and proposal.source == str(photos)
    assert proposal.out == f"{photos}-segexplorer"
    assert proposal.settings == BatchSettings(("gradcam", "activation", "ablation"), "all", 64)
    chosen = BatchSettings(("gradcam",), "sky,road", 40)
    doc.run_proposal(proposal, out=str(tmp_path / "out"), settings=chosen)
    runner.run_until_idle()
    record = json.loads((tmp_path / "out" / "run.json").read_text())["arguments"]
    assert (record["methods"], record["targets"], record["size"]) == (["gradcam"], "sky,road", 40)
    rows = pq.read_table(tmp_path / "out" / "summary.parquet").to_pylist()
    assert {r["class"] for r in rows if r["target"]} <= {"sky", "road"}
    assert "ablation_outside_share" not in rows[0]


def test_run_batch_on_a_stopped_batch_continues_it_with_its_own_options(batch, tmp_path):
    cards, photos, reference = batch
    runner = QueueRunner()
    doc = DatasetState.on(runner)
    out = tmp_path / "out"
    runner.cancel_during = lambda job: job.channel == BATCH and (out / "journal.jsonl").exists() \
        and len((out / "journal.jsonl").read_text().splitlines()) >= 2
    own = BatchSettings(("gradcam", "ablation"), "all", 32)
    doc.run_batch(photos, out, ModelChoice(str(cards.fast), "default", "cpu", 32),
                  AnalysisChoice(), own)
    runner.run_until_idle()
    assert doc.last_message.startswith("Batch stopped")
    runner.cancel_during = None
    # the main window has moved on meanwhile: another size, other options
    proposal = doc.batch_proposal(ModelChoice(str(cards.fast), "untrained", "cpu", 96),
                                  AnalysisChoice(aggregation="sum"), "/elsewhere")
    assert proposal.continuing and (proposal.source, proposal.out) == (str(photos), str(out))
    assert proposal.settings == own and "2 images done" in proposal.note
    assert proposal.analysis.aggregation == "argmax" and proposal.model.weights == "default"
    doc.run_proposal(proposal)
    runner.run_until_idle()
    assert doc.last_message.startswith("Batch done: 4 images explained, 1 could not be")
    view = dataset_view(doc)
    assert len({r.image for r in view.rows}) == 6
    record = json.loads((out / "run.json").read_text())["arguments"]
    assert record["methods"] == ["gradcam", "ablation"] and record["size"] == 32
    # a batch the command line ran (no --size: the card's own) continues as it was run
    doc.open_folder(reference)
    runner.run_until_idle()
    proposal = doc.batch_proposal(ModelChoice(str(cards.fast), "default", "cpu", 96),
                                  AnalysisChoice(), "")
    assert proposal.continuing and proposal.settings.size is None
    doc.run_proposal(proposal)
    runner.run_until_idle()
    assert doc.last_message.startswith("Batch done: 0 images explained"), doc.last_message
