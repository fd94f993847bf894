"""A comparison batch (``batch --with``) in the dataset window's document, without Qt:
the table of the two models' figures, the images ordered by how much the models disagree,
and a double-click that opens the image compared with model B in the main window's
document."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import torch
from batch_models import photo_folder, write_cards

from segexplorer.cli import main
from segexplorer.engine.models import load_model
from segexplorer.gui.document import Document
from segexplorer.gui.document.choices import AnalysisChoice, ModelChoice
from segexplorer.gui.document.dataset import CHANGED, IMAGE, DatasetState
from segexplorer.gui.document.dataset_view import dataset_view
from segexplorer.gui.document.runner import QueueRunner

CAR = 3


def comparison_batch(root):
    """(A's card, B's weights, the photos, the batch folder): B's 'car' row x 1.5."""
    cards = write_cards(root / "cards")
    state = load_model(str(cards.fast), None, "cpu").module.state_dict()
    state["head.weight"][CAR] *= 1.5
    state["head.bias"][CAR] *= 1.5
    weights = root / "car_x1.5.pt"
    torch.save(state, weights)
    photos = photo_folder(root / "photos", count=4)
    out = root / "out"
    assert main(["batch", str(photos), "--model", str(cards.fast), "--with", str(cards.fast),
                 "--with-weights", str(weights), "--device", "cpu", "--gpu-memory", "1",
                 "--methods", "gradcam", "--outputs", "report", "--out", str(out),
                 "-q"]) == 0
    return cards.fast, weights, photos, out


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    return comparison_batch(tmp_path_factory.mktemp("dataset_compare"))


def opened(out) -> DatasetState:
    runner = QueueRunner()
    doc = DatasetState.on(runner)
    doc.open_folder(out)
    assert runner.run_until_idle() == 1
    return doc


def test_a_comparison_folder_lists_both_models_figures_most_changed_image_first(compared):
    _card, _weights, _photos, out = compared
    doc = opened(out)
    view = dataset_view(doc)
    table = pq.read_table(out / "comparison.parquet").to_pylist()
    assert view.sort == (CHANGED, True) and doc.sort == (CHANGED, True)
    assert [c.key for c in view.columns] == ["image", "class", CHANGED, "iou", "share_a",
                                             "share_b", "score_a", "score_b",
                                             "gradcam_spearman"]
    assert len(view.rows) == len(table)
    changed = {r["image"]: r["changed_share"] for r in table}
    order = [row.image for row in view.rows]
    shares = [changed[image] for image in order]
    assert shares == sorted(shares, reverse=True)
    assert order[0] == doc.dataset.comparison.by_disagreement()[0][0]
    # the thumbnails follow the same order, one per image, with its changed share
    tiles = [tile.image for tile in view.tiles]
    assert tiles == list(dict.fromkeys(order))
    assert "changed " in view.tiles[0].caption
    by_key = {(r["image"], r["class"]): r for r in table}
    for row in view.rows:
        expected = by_key[(row.image, row.class_name)]
        texts = dict(zip((c.key for c in view.columns), row.texts))
        assert row.class_index == expected["index_a"]
        assert texts["iou"] == ("" if expected["iou"] is None else f"{expected['iou']:.3f}")
    assert view.summary.startswith("4 images compared - A: six_fast.toml (card), B: "
                                   "six_fast.toml (card) [car_x1.5.pt]; most changed: ")
    # sorting by image name, and back to the disagreement
    doc.sort_by(IMAGE)
    assert [r.image for r in dataset_view(doc).rows] == sorted(r.image for r in view.rows)
    doc.sort_by(CHANGED)
    assert [r.image for r in dataset_view(doc).rows] == order


def test_showing_one_class_keeps_the_rows_of_that_class_in_a(compared):
    *_, out = compared
    doc = opened(out)
    doc.set_class_filter(CAR)
    rows = dataset_view(doc).rows
    assert rows and all(r.class_index == CAR and r.class_name == "car" for r in rows)


def test_an_image_opens_compared_with_model_b(compared):
    card, weights, photos, out = compared
    doc = opened(out)
    requests = []
    doc.open_requested.connect(requests.append)
    first = dataset_view(doc).rows[0]
    doc.open_image(first.image, first.class_index, first.class_name)
    (request,) = requests
    resolved = str(card.resolve())
    assert request.path == str(photos / first.image)
    assert request.model == ModelChoice(resolved, "default", "cpu", 32, "fp32")
    assert request.compare_with == ModelChoice(resolved, str(weights.resolve()), "cpu", 32,
                                               "fp32")
    assert request.card == resolved and request.compare_card == resolved
    # the main window's document: A as the batch ran it, compared with B on the image
    runner = QueueRunner()
    window = Document(runner, ModelChoice("tiny", "untrained", "cpu", 32))
    failures: list = []
    window.failed.connect(failures.append)
    window.open_request(request)
    assert window.comparison.active
    assert window.comparison.model.choice == request.compare_with
    runner.run_until_idle()
    assert not failures
    second = window.comparison.held()
    assert second is not None and second.model.weights == str(weights.resolve())
    assert window.model.choice == request.model and window.view.target == first.class_index


def test_run_batch_on_a_comparison_folder_offers_a_new_batch_not_to_continue_it(compared):
    """A comparison (batch --with) continues on the command line: the window's Run Batch
    runs one model, so it proposes a new batch instead of a refused continuation."""
    _card, _weights, photos, out = compared
    doc = opened(out)
    proposal = doc.batch_proposal(ModelChoice("tiny", "untrained", "cpu", 48),
                                  AnalysisChoice(), str(photos))
    assert not proposal.continuing and proposal.out != str(out)
    assert proposal.model.architecture == "tiny"
