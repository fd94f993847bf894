"""A comparison batch (``batch --with``) in the dataset window, through its widgets: the
images ordered by how much the two models disagree, and a double-click on one opening it
in the main window compared with model B (the split view and the Compare panel)."""

from __future__ import annotations

import pytest
from gui_support import wait_idle
from PySide6.QtCore import Qt
from test_dataset_compare import comparison_batch

from segexplorer.gui.document.dataset_view import dataset_view


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    return comparison_batch(tmp_path_factory.mktemp("dataset_compare_window"))


def column(dataset_window, label: str) -> list[str]:
    model = dataset_window.table.model()
    at = next(i for i in range(model.columnCount())
              if model.headerData(i, Qt.Orientation.Horizontal) == label)
    return [model.index(r, at).data() for r in range(model.rowCount())]


def test_a_double_click_opens_the_most_changed_image_compared_with_b(qtbot, make_window,
                                                                     compared):
    card, weights, photos, out = compared
    window = make_window(interactive=False)
    window.dialogs.unattended_answer = True  # "Run It": the batch's card runs its factory
    dataset_window = window.datasets.open_dataset(out)
    qtbot.waitExposed(dataset_window)
    table = dataset_window.table
    qtbot.waitUntil(lambda: table.model().rowCount() > 0, timeout=10000)
    assert dataset_window.summary.text().startswith("4 images compared")
    ranked = dataset_window.document.dataset.comparison.by_disagreement()
    images = list(dict.fromkeys(column(dataset_window, "Image")))
    assert images == [key for key, _share in ranked]  # most changed first
    header = table.horizontalHeader()
    assert header.sortIndicatorSection() == 2
    assert header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
    # a double-click on the first row, as a user makes it
    rect = table.visualRect(table.model().index(0, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    doc = window.document
    qtbot.waitUntil(lambda: doc.comparison.active and doc.image.source is not None
                    and doc.image.source.path is not None, timeout=10000)
    assert str(doc.image.source.path) == str(photos / images[0])
    assert doc.comparison.model.weights == str(weights.resolve())
    assert window.compare_dock.isVisible()
    qtbot.waitUntil(lambda: doc.comparison.held() is not None, timeout=60000)
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: window.compare_panel.rows() != [], timeout=60000)
    row = dataset_view(dataset_window.document).rows[0]
    assert doc.view.target == row.class_index
