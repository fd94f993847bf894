"""The window on small screens and in narrow docks (issue 26, items 5, 6, 7 and 14): what
the panels show is not cut, the wheel scrolls a panel, windows fit their screen, Tab
stays on what is shown, the shortcuts sheet reads in the order of its keys.

Each test failed on main at 7f219e3 (run against that tree), but the dialog's: item 7
(the canvas drawn 2x behind a dialog) did not happen under Xvfb + openbox at 1600 x 1000
or 1024 x 700 with the Open and About dialogs, on main or here; the test keeps what the
canvas shows while a dialog is open from changing.
"""

from __future__ import annotations

from gui_support import wait_for_prediction
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QKeySequence, QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QScrollArea, QWidget

from segexplorer.engine.methods import METHOD_REGISTRY

SMALL = (1008, 652)  # 1024 x 700 less openbox's frame and a panel


def scroll_area_of(widget: QWidget) -> QScrollArea:
    parent = widget.parentWidget()
    while not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    return parent


def wheel(widget: QWidget, steps: int = -1) -> None:
    """A wheel turn over the middle of ``widget`` (``steps`` notches, down < 0)."""
    center = QPointF(widget.rect().center())
    event = QWheelEvent(center, QPointF(widget.mapToGlobal(center.toPoint())), QPoint(0, 0),
                        QPoint(0, 120 * steps), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def wholly_inside(widget: QWidget, area: QScrollArea) -> bool:
    """Whether ``widget`` lies within what ``area`` shows (not cut, no need to scroll
    sideways)."""
    top_left = widget.mapTo(area.viewport(), QPoint(0, 0))
    return (top_left.x() >= 0 and top_left.x() + widget.width() <= area.viewport().width())


# 5 ------------------------------------------------------------------------------------
def test_the_wheel_over_a_drop_down_scrolls_the_panel_and_leaves_its_value(qtbot, make_window):
    window = make_window()
    window.resize(*SMALL)
    window.evaluate_dock.raise_()
    panel = window.evaluate_panel
    qtbot.waitUntil(lambda: panel.isVisible() and not panel.visibleRegion().isEmpty())
    area = scroll_area_of(panel)
    bar = area.verticalScrollBar()
    assert bar.maximum() > 0, "the Evaluate panel is taller than its dock here"
    combo = panel.curve
    bar.setValue(0)
    before, scrolled = combo.currentIndex(), bar.value()
    wheel(combo, -1)
    assert combo.currentIndex() == before  # the value the user did not touch stays
    assert bar.value() > scrolled  # the panel scrolled under the pointer
    # a drop-down the user is in still takes the wheel
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    wheel(combo, -1)
    assert combo.currentIndex() != before
    assert combo.focusPolicy() == Qt.FocusPolicy.StrongFocus  # the wheel takes no focus


def test_all_four_curves_are_stacked_with_one_legend_outside_them(qtbot, make_window):
    """In a 270 px dock, a 2 x 2 grid put each legend over its plot and cut the titles:
    the four curves stand one under the other, their legend above them all."""
    import numpy as np
    from matplotlib.figure import Figure

    from segexplorer.render.evaluation import (
        CURVE_ORDER,
        BandData,
        CurveData,
        TargetCurves,
        draw_target,
    )

    x = np.linspace(0, 1, 5)
    data = TargetCurves("'cat' (class 8)",
                        {"gradcam": {n: CurveData(x, 1 - x, 0.5) for n in CURVE_ORDER},
                         "ablation": {n: CurveData(x, x, 0.5) for n in CURVE_ORDER},
                         "hirescam": {n: CurveData(x, x * x, 0.3) for n in CURVE_ORDER}},
                        {n: BandData(x, x, x * 0, 0.5) for n in CURVE_ORDER},
                        {"gradcam": "Layer Grad-CAM", "ablation": "Feature ablation",
                         "hirescam": "HiResCAM (Seg-XRes-CAM)"},
                        {n: ("gradcam", "ablation") for n in CURVE_ORDER})
    figure = Figure(figsize=(2.7, 8.6), dpi=100, layout="constrained")
    draw_target(figure, data, layout="stack")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    axes = figure.axes
    assert len(axes) == 4 and all(ax.get_legend() is None for ax in axes)
    assert len(figure.legends) == 1
    legend = figure.legends[0].get_window_extent(renderer)
    boxes = [ax.get_window_extent(renderer) for ax in axes]
    assert all(legend.y0 >= box.y1 for box in boxes)  # above every plot
    assert legend.x0 >= 0 and legend.x1 <= figure.bbox.width  # not cut at the dock's sides
    assert figure.legends[0].get_title().get_text() == "'cat' (class 8)"
    for ax, box in zip(axes, boxes):  # each title inside the figure, and on no other plot
        title = ax.title.get_window_extent(renderer)
        assert title.x0 >= 0 and title.x1 <= figure.bbox.width
        assert not any(title.overlaps(other) for other in boxes if other is not box)


# 6 ------------------------------------------------------------------------------------
def test_the_explanation_panel_fits_its_dock_in_a_1024_by_700_window(qtbot, make_window,
                                                                    blocks_image):
    window = make_window()
    window.resize(*SMALL)
    window.document.image.open(blocks_image)
    wait_for_prediction(qtbot, window)
    panel = window.explain_panel
    area = scroll_area_of(panel)
    qtbot.waitUntil(lambda: not panel.visibleRegion().isEmpty())
    assert not area.horizontalScrollBar().isVisible()
    for widget in (panel.compute, panel.reset_layer, panel.target_label, panel.side_by_side):
        assert wholly_inside(widget, area), widget.objectName() or type(widget).__name__
    assert panel.target_label.width() >= min(panel.target_label.sizeHint().width(),
                                             area.viewport().width() - 20)


def test_the_evaluate_table_shows_every_area_whole_in_a_narrow_dock(qtbot, make_window,
                                                                   blocks_image):
    from gui_support import wait_idle

    window = make_window()
    window.resize(*SMALL)
    window.document.image.open(blocks_image)
    wait_for_prediction(qtbot, window)
    evaluation = window.document.evaluation
    evaluation.methods = ("gradcam", "ablation", "hirescam")  # a long name among them
    evaluation.update_settings(pixel_steps=4, chance_runs=2, mprt=False, infidelity=False,
                               sensitivity=False)
    window.evaluate_dock.raise_()
    window.resizeDocks([window.evaluate_dock], [270], Qt.Orientation.Horizontal)
    evaluation.run()
    wait_idle(qtbot, window)
    table = window.evaluate_panel.areas
    qtbot.waitUntil(lambda: table.rowCount() == 4 and table.item(0, 0) is not None)
    metrics = table.fontMetrics()
    for r in range(table.rowCount()):
        for c in range(table.columnCount()):
            text = table.item(r, c).text()
            assert metrics.horizontalAdvance(text) <= table.columnWidth(c) - 4, (r, c, text)
    assert table.horizontalScrollBar().maximum() == 0 or not table.horizontalScrollBar(
    ).isVisible()


def test_every_window_opens_inside_the_screens_available_area(qtbot, make_window, tmp_path):
    from segexplorer.gui.main_window import MainWindow

    window = MainWindow(interactive=False, num_threads=1)  # a first run: no saved geometry
    qtbot.addWidget(window)
    area = window.screen().availableGeometry()
    # (the test screen, 800 x 800, is smaller than the window's minimum size: the
    # smoke test's own screen checks the whole window, tests/gui/test_smoke.py)
    assert window.width() <= max(area.width(), window.minimumWidth())
    assert window.height() <= max(area.height(), window.minimumHeight())
    window.close()
    main = make_window(interactive=False)
    (tmp_path / "empty").mkdir()
    dataset = main.datasets.open_dataset(tmp_path / "empty")
    qtbot.waitExposed(dataset)
    area = dataset.screen().availableGeometry()
    assert dataset.width() <= max(area.width(), dataset.minimumWidth())
    assert dataset.height() <= max(area.height(), dataset.minimumHeight())
    run = dataset.run_button
    corner = run.mapTo(dataset, QPoint(run.width(), run.height()))
    assert corner.x() <= dataset.width() and corner.y() <= dataset.height()


# 7 ------------------------------------------------------------------------------------
def test_a_dialog_leaves_the_canvas_as_it_was(qtbot, make_window, blocks_image):
    window = make_window()
    window.document.image.open(blocks_image)
    wait_for_prediction(qtbot, window)
    canvas = window.canvas
    before = (canvas.zoom(), canvas.size(), canvas.viewport().grab().toImage())
    window.commands.about.trigger()
    box = next(w for w in QApplication.topLevelWidgets()
               if isinstance(w, QMessageBox) and w.isVisible())
    qtbot.waitExposed(box)
    during = (canvas.zoom(), canvas.size(), canvas.viewport().grab().toImage())
    box.close()
    assert during == before


# 14 -----------------------------------------------------------------------------------
def test_the_layers_panel_reads_whole_at_its_default_width(qtbot, make_window):
    window = make_window()
    window.layers_dock.raise_()
    panel = window.layers_panel
    qtbot.waitUntil(lambda: not panel.visibleRegion().isEmpty())
    from PySide6.QtWidgets import QLabel

    assert scroll_area_of(panel).horizontalScrollBar().maximum() == 0  # nothing to the right
    for label in panel.findChildren(QLabel):
        if label.isVisible() and label.text() and not label.wordWrap():
            assert label.width() >= label.sizeHint().width(), label.text()
        elif label.isVisible() and label.wordWrap():
            assert label.height() >= label.heightForWidth(label.width()), label.text()


def test_tab_never_stops_in_the_dock_behind_another_tab(qtbot, make_window):
    window = make_window()
    window.classes_dock.raise_()  # the Layers tab is behind it
    qtbot.waitUntil(lambda: window.layers_panel.visibleRegion().isEmpty())
    window.canvas.setFocus()
    qtbot.waitUntil(window.canvas.hasFocus)
    hidden = []
    for _ in range(60):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        focused = QApplication.focusWidget()
        if focused is not None and window.layers_panel.isAncestorOf(focused):
            hidden.append(focused)
    assert hidden == []


def test_the_shortcuts_sheet_is_ordered_by_key_and_says_what_escape_does(make_window):
    from segexplorer.gui.window_actions import MOUSE_GESTURES, shortcut_rows

    window = make_window(show=False)
    rows = shortcut_rows(window)[:-len(MOUSE_GESTURES)]
    keys = [QKeySequence(k.split(", ")[0])[0] for k, _ in rows]
    alts = [k.key().value for k in keys
            if k.keyboardModifiers() == Qt.KeyboardModifier.AltModifier]
    assert alts == sorted(alts) and len(alts) >= 3  # Alt+1, Alt+2, ...
    first_modified = next(i for i, k in enumerate(keys)
                          if k.keyboardModifiers() != Qt.KeyboardModifier.NoModifier)
    assert all(k.keyboardModifiers() == Qt.KeyboardModifier.NoModifier
               for k in keys[:first_modified])  # plain keys first
    escape = next(text for k, text in rows if k == "Esc")
    assert "Cancel" in escape and "ablate" in escape.lower()


def test_about_names_every_method_of_the_registry(qtbot, make_window):
    window = make_window()
    window.commands.about.trigger()
    box = next(w for w in QApplication.topLevelWidgets()
               if isinstance(w, QMessageBox) and w.isVisible())
    text = box.text()
    box.close()
    for info in METHOD_REGISTRY.values():
        assert info.label in text, info.label
