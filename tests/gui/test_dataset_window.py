"""File > Open Dataset... and Run Batch on Folder...: the dataset window driven through its
widgets (header clicks, the class list, heat-map cells, double-clicks) and the main window
opening a batch image with the batch's model."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from batch_models import photo_folder, write_cards
from gui_support import SlowDown, wait_for_prediction, wait_idle
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QDialog

from segexplorer.cli import main
from segexplorer.gui.document.choices import ModelChoice
from segexplorer.gui.document.dataset_view import dataset_view


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset_window")
    cards = write_cards(root / "cards")
    photos = photo_folder(root / "photos", count=5)
    out = root / "out"
    assert main(["batch", str(photos), "--model", str(cards.fast), "--device", "cpu",
                 "--out", str(out), "-q"]) == 0
    return cards, photos, out


def shown_column(dataset_window, label: str) -> list[str]:
    model = dataset_window.table.model()
    column = next(i for i in range(model.columnCount())
                  if model.headerData(i, Qt.Orientation.Horizontal) == label)
    return [model.index(r, column).data() for r in range(model.rowCount())]


def test_file_menu_offers_datasets(make_window):
    window = make_window(show=False)
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    texts = [a.text() for a in file_menu.actions()]
    assert texts.index("Open &Dataset...") == texts.index("Open &Recent") + 1
    assert "Run &Batch on Folder..." in texts


def test_a_dataset_opens_sorts_by_a_header_click_and_shows_one_class(qtbot, make_window,
                                                                    batch):
    _, _, out = batch
    window = make_window(interactive=False)
    dataset_window = window.datasets.open_dataset(out)
    qtbot.waitExposed(dataset_window)
    summary = pq.read_table(out / "summary.parquet").to_pylist()
    qtbot.waitUntil(lambda: dataset_window.table.model().rowCount() == len(summary),
                    timeout=10000)
    assert dataset_window.windowTitle().startswith("out - Dataset")
    assert dataset_window.summary.text().startswith("5 images explained")
    # a click on the "Grad-CAM outside" header sorts by it, largest first
    header = dataset_window.table.horizontalHeader()
    model = dataset_window.table.model()
    section = next(i for i in range(model.columnCount())
                   if model.headerData(i, Qt.Orientation.Horizontal) == "Grad-CAM outside")
    x = header.sectionViewportPosition(section) + header.sectionSize(section) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(x, 5))
    values = [int(v.split()[0]) for v in shown_column(dataset_window, "Grad-CAM outside") if v]
    assert values == sorted(values, reverse=True) and len(values) > 3
    assert header.sortIndicatorSection() == section
    # the class list: choosing a class leaves its rows only
    combo = dataset_window.class_filter
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)
    chosen = combo.currentData()
    assert chosen is not None
    name = combo.currentText().rsplit(" (", 1)[0]
    qtbot.waitUntil(lambda: set(shown_column(dataset_window, "Class")) == {name}, timeout=5000)
    assert len(shown_column(dataset_window, "Class")) == sum(
        1 for r in summary if r["class_index"] == chosen)
    # the thumbnails follow, one per image, in the table's order
    images = shown_column(dataset_window, "Image")
    tiles = dataset_window.thumbnails.model()
    assert [tiles.index(i, 0).data(Qt.ItemDataRole.ToolTipRole).split("\n")[0]
            for i in range(tiles.rowCount())] == images
    assert not tiles.index(0, 0).data(Qt.ItemDataRole.DecorationRole).isNull()


def test_a_heat_map_click_lists_images_and_a_double_click_explains_one(qtbot, make_window,
                                                                      batch):
    cards, photos, out = batch
    window = make_window(interactive=False)
    window.dialogs.unattended_answer = True  # "Run It": the batch's card runs its factory
    dataset_window = window.datasets.open_dataset(out)
    qtbot.waitUntil(lambda: dataset_window.heatmap.rowCount() > 0, timeout=10000)
    dataset_window.tabs.setCurrentIndex(2)
    heat = dataset_window.heatmap
    row, column = next((i, j) for i in range(heat.rowCount()) for j in range(heat.columnCount())
                       if heat.item(i, j).text())
    rect = heat.visualItemRect(heat.item(row, column))
    qtbot.mouseClick(heat.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    count = int(heat.item(row, column).text().split("n=")[1])
    qtbot.waitUntil(lambda: dataset_window.cell_images.count() == count, timeout=5000)
    assert heat.verticalHeaderItem(row).text() in dataset_window.cell_caption.text()
    item = dataset_window.cell_images.item(0)
    key = item.data(Qt.ItemDataRole.UserRole)
    list_rect = dataset_window.cell_images.visualItemRect(item)
    # a double-click, as a user makes it: press and release, then the double-click
    qtbot.mouseClick(dataset_window.cell_images.viewport(), Qt.MouseButton.LeftButton,
                     pos=list_rect.center())
    qtbot.mouseDClick(dataset_window.cell_images.viewport(), Qt.MouseButton.LeftButton,
                      pos=list_rect.center())
    qtbot.waitUntil(lambda: window.document.image.source is not None
                    and window.document.image.source.path is not None, timeout=10000)
    assert str(window.document.image.source.path) == str(photos / key)
    card = str(cards.fast.resolve())
    assert window.document.model.choice == ModelChoice(card, "default", "cpu", 32, "fp32")
    assert window.model_panel.architecture.currentText() == "six classes (card)"
    wait_for_prediction(qtbot, window)
    wait_idle(qtbot, window)
    target = dataset_view(dataset_window.document).heatmap.classes[row]
    assert window.document.view.target == target
    assert window.document.store.prediction.categories[target] == heat.verticalHeaderItem(row).text()


def test_a_batch_runs_in_the_window_and_can_be_stopped_and_continued(qtbot, make_window,
                                                                     batch, tmp_path):
    _, photos, _ = batch
    window = make_window(interactive=False, show=False)
    window.document.model.set(ModelChoice("tiny_slow", "untrained", "cpu", 32))
    SlowDown.seconds = 0.05
    out = tmp_path / "from window"
    dataset_window = window.datasets.run_batch(photos, out)
    assert dataset_window.cancel_button.isVisible() and not dataset_window.run_button.isEnabled()
    qtbot.waitUntil(lambda: dataset_window.progress.value() >= 1, timeout=20000)
    assert "images/s" in dataset_window.progress_label.text()
    bar = dataset_window.progress.text()  # on the bar: done, images/s, the time left
    assert bar.startswith(f"{dataset_window.progress.value()}/5 images") and "images/s" in bar
    assert "ETA" in bar and "ETA ?" not in bar
    qtbot.mouseClick(dataset_window.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dataset_window.cancel_button.isVisible(), timeout=20000)
    assert dataset_window.progress_label.text().startswith("Batch stopped")
    qtbot.waitUntil(lambda: dataset_window.table.model().rowCount() > 0, timeout=10000)
    stopped_at = len(set(shown_column(dataset_window, "Image")))
    assert 1 <= stopped_at < 5
    SlowDown.seconds = 0.0
    # meanwhile the main window moved on: Run Batch... still offers to continue this batch
    window.document.model.set(ModelChoice("tiny", "untrained", "cpu", 64))
    qtbot.mouseClick(dataset_window.run_button, Qt.MouseButton.LeftButton)
    dialog = dataset_window.findChild(QDialog, "runBatchDialog")
    qtbot.waitUntil(lambda: dialog.isVisible(), timeout=5000)
    assert dialog.input.text() == str(photos) and dialog.output.text() == str(out)
    assert dialog.run.text() == "Continue" and not dialog.working_size.isEnabled()
    assert dialog.working_size.value() == 32  # the batch's own size, not the window's 64
    qtbot.mouseClick(dialog.run, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dataset_window.progress_label.text().startswith("Batch done"),
                    timeout=30000)
    left = 5 - stopped_at
    assert f"{left} image{'s' if left != 1 else ''} explained" in \
        dataset_window.progress_label.text()
    qtbot.waitUntil(lambda: len(set(shown_column(dataset_window, "Image"))) == 5, timeout=10000)
    wait_idle(qtbot, window)


def test_the_table_shows_every_class_name_whole_whenever_its_rows_change(qtbot, make_window,
                                                                        batch):
    """The columns were fitted once, to the first rows shown: a class name that came
    later (a batch adding rows, the class list filtering them) was cut ("ba...nd")
    beside empty space (issue 26, item 14). Failed on main at 7f219e3."""
    from dataclasses import replace

    _, _, out = batch
    window = make_window(interactive=False)
    dataset_window = window.datasets.open_dataset(out)
    qtbot.waitExposed(dataset_window)
    table = dataset_window.table
    qtbot.waitUntil(lambda: table.model().rowCount() > 0, timeout=10000)
    model = table.model()
    column = next(i for i in range(model.columnCount())
                  if model.headerData(i, Qt.Orientation.Horizontal) == "Class")

    read = dataset_view(window.datasets.document)
    # a long class name in the last row (the tiny models' names are short)
    last = read.rows[-1]
    long_name = "background and everything else"
    full = replace(read, rows=read.rows[:-1] + (replace(last, texts=tuple(
        long_name if i == column else text for i, text in enumerate(last.texts))),))

    def whole() -> bool:  # every class name of the batch fits its column
        metrics = table.fontMetrics()
        widest = max(metrics.horizontalAdvance(row.texts[column]) for row in full.rows)
        return table.columnWidth(column) >= widest + 6  # the cell's margins: 2 x 3 px

    dataset_window.apply(full)
    assert whole()
    # the same columns, first with short class names (the rows a batch has written so
    # far), then all of them
    short = replace(full, rows=tuple(
        replace(row, texts=tuple("a" if i == column else text
                                 for i, text in enumerate(row.texts))) for row in full.rows))
    other = tuple(replace(c, tooltip=c.tooltip + " ") for c in full.columns)
    dataset_window.apply(replace(short, columns=other))  # another batch's columns
    dataset_window.apply(short)
    assert not whole()  # (the test would say nothing otherwise)
    dataset_window.apply(full)
    assert whole()


def test_run_batch_lets_the_user_choose_methods_classes_and_size(qtbot, make_window, batch,
                                                                 tmp_path):
    _, photos, _ = batch
    window = make_window(interactive=False, show=False)
    window.document.model.set(ModelChoice("tiny", "untrained", "cpu", 64))
    dataset_window = window.datasets.show_window()
    qtbot.mouseClick(dataset_window.run_button, Qt.MouseButton.LeftButton)
    dialog = dataset_window.findChild(QDialog, "runBatchDialog")
    qtbot.waitUntil(lambda: dialog.isVisible(), timeout=5000)
    assert dialog.run.text() == "Run" and dialog.working_size.value() == 64
    assert [n for n, box in dialog.methods.items() if box.isChecked()] == [
        "gradcam", "activation", "ablation"]
    dialog.input.setText(str(photos))
    dialog.output.clear()
    qtbot.keyClicks(dialog.output, str(tmp_path / "chosen"))
    for name in ("activation", "ablation"):
        dialog.methods[name].click()
    dialog.targets.setText("background")
    dialog.working_size.setValue(48)
    qtbot.mouseClick(dialog.run, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dataset_window.progress_label.text().startswith("Batch done"),
                    timeout=30000)
    record = json.loads((tmp_path / "chosen" / "run.json").read_text())["arguments"]
    assert (record["methods"], record["targets"], record["size"]) == (
        ["gradcam"], "background", 48)
    assert record["model"] == "tiny"
    wait_idle(qtbot, window)
