"""The Evaluate panel: which methods to evaluate and how, the cost, Run, and the answer
(the curves against chance, the areas with the best method marked, the randomisation
strip, a verdict per method) with its exports. Each widget edits one field of the
evaluation state (:meth:`EvaluatePanel.bind`); the answer is the presenter's
``EvaluationView`` (:meth:`EvaluatePanel.apply`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import QPoint, QSignalBlocker, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QPalette, QPixmap, QWheelEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..engine.evaluation_plan import QUICK_DESCRIPTION
from ..engine.methods import METHOD_REGISTRY
from ..render.evaluation import CURVE_ORDER, CURVE_TITLES, draw_target, method_colors
from .binding import bind_combo, enum_combo, on_fields, select_value
from .document.choices import METHOD_LABELS
from .document.formatting import format_value
from .document.panel_views import EvaluationView
from .explain_panel import section_label
from .imaging import to_qimage

if TYPE_CHECKING:
    from .document.evaluation import EvaluationState

#: the curves the panel draws: each one, or all four ('')
CURVE_LABELS = {**{name: CURVE_TITLES[name] for name in CURVE_ORDER}, "": "All four"}
#: the curves' height in the dock: one curve; all four, one under the other at the dock's
#: width, with one legend above them (a 2 x 2 grid at 270 px had its legends over the
#: curves and its titles cut)
ONE_CURVE_HEIGHT, ALL_CURVES_HEIGHT = 260, 860


class CurvesCanvas(FigureCanvasQTAgg):
    """matplotlib's Qt canvas, without its wheel handling: the wheel scrolls the panel."""

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt's name
        event.ignore()


SHORT = {"deletion_segments": "Del.\nseg.", "insertion_segments": "Ins.\nseg.",
         "deletion_pixels": "Del.\npix.", "insertion_pixels": "Ins.\npix."}
BEST_BACKGROUND = "#c8e6c9"  # the best method's cell


class AreasTable(QTableWidget):
    """The areas: every cell shows its number whole. The method names (the rows'
    headers) give way first: short labels, elided when the dock is narrower still
    (the whole name is the header's tooltip); a 270 px dock showed "0...." in every
    cell beside the long names."""

    def cell_width(self) -> int:
        """Enough for "0.00" (and "n/a") with the item's margins."""
        margin = self.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, self)
        metrics = self.fontMetrics()
        return max(metrics.horizontalAdvance(t) for t in ("0.00", "-0.00", "n/a")) \
            + 2 * (margin + 1) + 4

    def fit_header(self) -> None:
        header = self.verticalHeader()
        natural = max((header.sectionSizeFromContents(i).width()
                       for i in range(self.rowCount())), default=0)
        room = self.width() - 2 * self.frameWidth() - self.columnCount() * self.cell_width()
        header.setFixedWidth(max(36, min(natural, room)))

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        self.fit_header()
        super().resizeEvent(event)


def area_item(auc: float, what: str) -> QTableWidgetItem:
    """An area, two decimals (a 270 px dock holds four columns of them); the tooltip and
    the exports have it to three significant digits and more."""
    item = QTableWidgetItem(f"{auc:.2f}" if math.isfinite(auc) else "n/a")
    item.setToolTip(f"{what}: area {format_value(auc)}")
    return item


class EvaluatePanel(QWidget):
    """Evaluate the explanations: settings, Run, curves, areas, strip, verdicts."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._shown: tuple[object, ...] | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 6, 8, 8)
        outer.setSpacing(6)

        outer.addWidget(section_label("Methods to evaluate", self))
        self.methods = QListWidget(self)
        self.methods.setObjectName("evaluateMethods")
        self.methods.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.methods.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        outer.addWidget(self.methods)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.quick = QCheckBox("Quick preview", self)
        self.quick.setObjectName("quickCheck")
        self.quick.setToolTip(QUICK_DESCRIPTION)
        form.addRow("", self.quick)
        self.pixel_steps = QSpinBox(self)
        self.pixel_steps.setObjectName("pixelStepsSpin")
        self.pixel_steps.setRange(1, 1000)
        self.pixel_steps.setKeyboardTracking(False)
        self.pixel_steps.setToolTip("Deletion and insertion by pixel in this many steps of "
                                    "equal pixel counts")
        form.addRow("Pixel steps", self.pixel_steps)
        self.chance_runs = QSpinBox(self)
        self.chance_runs.setObjectName("chanceRunsSpin")
        self.chance_runs.setRange(0, 1000)
        self.chance_runs.setKeyboardTracking(False)
        self.chance_runs.setToolTip("Random rankings: the chance band every curve is read "
                                    "against")
        form.addRow("Chance runs", self.chance_runs)
        self.mprt = QCheckBox("Randomisation check", self)
        self.mprt.setObjectName("mprtCheck")
        self.mprt.setToolTip("Re-initialise the model's layers from the head down and "
                             "recompute each map (Adebayo et al., 2018)")
        self.infidelity = QCheckBox("Infidelity (Captum)", self)
        self.infidelity.setObjectName("infidelityCheck")
        self.sensitivity = QCheckBox("Sensitivity (Captum)", self)
        self.sensitivity.setObjectName("sensitivityCheck")
        self.sensitivity.setToolTip("Recomputes every map on a few perturbed inputs: "
                                    "costly for the perturbation methods")
        for box in (self.mprt, self.infidelity, self.sensitivity):
            form.addRow("", box)
        outer.addLayout(form)

        run_row = QHBoxLayout()
        self.cost = QLabel(self)
        self.cost.setObjectName("evaluateCost")
        self.cost.setWordWrap(True)
        self.cost.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.run = QPushButton("Run", self)
        self.run.setObjectName("evaluateButton")
        self.run.setToolTip("Evaluate the chosen methods for every predicted class")
        run_row.addWidget(self.cost, 1)
        run_row.addWidget(self.run, 0, Qt.AlignmentFlag.AlignTop)
        outer.addLayout(run_row)
        self.status = QLabel(self)
        self.status.setObjectName("evaluateStatus")
        self.status.setWordWrap(True)
        outer.addWidget(self.status)

        self.results_heading = section_label("Curves", self)
        outer.addWidget(self.results_heading)
        self.curve = enum_combo(self, CURVE_LABELS, "curveCombo")
        outer.addWidget(self.curve)
        self.figure = Figure(figsize=(3.2, 2.8), dpi=100, layout="constrained")
        self.canvas = CurvesCanvas(self.figure)
        self.canvas.setObjectName("evaluateCurves")
        self.canvas.setFixedHeight(ONE_CURVE_HEIGHT)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        outer.addWidget(self.canvas)

        self.areas = AreasTable(0, len(CURVE_ORDER), self)
        self.areas.setObjectName("evaluateAreas")
        self.areas.setHorizontalHeaderLabels([SHORT[n] for n in CURVE_ORDER])
        self.areas.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.areas.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.areas.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.areas.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.areas.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.areas.horizontalHeader().setMinimumSectionSize(self.areas.cell_width())
        self.areas.verticalHeader().setTextElideMode(Qt.TextElideMode.ElideRight)
        self.areas.setToolTip("Area under each curve; the best in bold on green (lowest for "
                              "deletion, highest for insertion; every method tied for the "
                              "best when several have the same area); the last row is "
                              "chance's mean")
        outer.addWidget(self.areas)

        outer.addWidget(section_label("Randomisation check", self))
        self.strip_method = QComboBox(self)
        self.strip_method.setObjectName("stripMethodCombo")
        outer.addWidget(self.strip_method)
        self.strip = QWidget(self)
        self.strip.setObjectName("randomisationStrip")
        self.strip_layout = QHBoxLayout(self.strip)
        self.strip_layout.setContentsMargins(0, 0, 0, 0)
        self.strip_layout.setSpacing(4)
        strip_scroll = QScrollArea(self)
        strip_scroll.setWidget(self.strip)
        strip_scroll.setWidgetResizable(True)
        strip_scroll.setFixedHeight(150)
        strip_scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer.addWidget(strip_scroll)

        outer.addWidget(section_label("Verdicts", self))
        self.verdicts = QLabel(self)
        self.verdicts.setObjectName("evaluateVerdicts")
        self.verdicts.setWordWrap(True)
        self.verdicts.setTextFormat(Qt.TextFormat.RichText)
        outer.addWidget(self.verdicts)

        buttons = QHBoxLayout()
        self.save_curves = QPushButton("Save curves...", self)
        self.save_curves.setObjectName("saveCurvesButton")
        self.save_numbers = QPushButton("Save numbers...", self)
        self.save_numbers.setObjectName("saveNumbersButton")
        buttons.addWidget(self.save_curves)
        buttons.addWidget(self.save_numbers)
        outer.addLayout(buttons)
        outer.addStretch(1)

        self._view: EvaluationView | None = None
        self._fill_methods()

    def bind(self, evaluation: EvaluationState, save_curves: Callable[[], None],
             save_numbers: Callable[[], None]) -> None:
        """Each widget edits one field of the evaluation; Run asks for it; the saves
        open their dialogs."""
        def method_toggled(item: QListWidgetItem) -> None:
            evaluation.set_method(str(item.data(Qt.ItemDataRole.UserRole)),
                                  item.checkState() == Qt.CheckState.Checked)

        def show_methods() -> None:
            with QSignalBlocker(self.methods):
                for i in range(self.methods.count()):
                    item = self.methods.item(i)
                    chosen = item.data(Qt.ItemDataRole.UserRole) in evaluation.methods
                    item.setCheckState(Qt.CheckState.Checked if chosen
                                       else Qt.CheckState.Unchecked)

        self.methods.itemChanged.connect(method_toggled)
        on_fields(evaluation, "methods", show_methods)
        for spin, name in ((self.pixel_steps, "pixel_steps"),
                           (self.chance_runs, "chance_runs")):
            spin.valueChanged.connect(
                lambda value, name=name: evaluation.update_settings(**{name: value}))
        for box, name in ((self.mprt, "mprt"), (self.infidelity, "infidelity"),
                          (self.sensitivity, "sensitivity")):
            box.toggled.connect(
                lambda on, name=name: evaluation.update_settings(**{name: bool(on)}))
        self.quick.toggled.connect(lambda on: evaluation.set_quick(bool(on)))
        on_fields(evaluation, "settings", lambda: self._show_settings(evaluation))
        bind_combo(self.curve, evaluation, "curve")
        self.strip_method.activated.connect(
            lambda i: setattr(evaluation, "strip_method", str(self.strip_method.itemData(i))))
        self.run.clicked.connect(lambda: evaluation.run())
        self.save_curves.clicked.connect(save_curves)
        self.save_numbers.clicked.connect(save_numbers)

    def _fill_methods(self) -> None:
        for name, label in METHOD_LABELS.items():
            item = QListWidgetItem(label, self.methods)
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
        rows = self.methods.count()
        self.methods.setFixedHeight(self.methods.sizeHintForRow(0) * rows
                                    + 2 * self.methods.frameWidth() + 2)

    def _show_settings(self, evaluation: EvaluationState) -> None:
        settings = evaluation.settings
        for widget, value in ((self.pixel_steps, settings.pixel_steps),
                              (self.chance_runs, settings.chance_runs),
                              (self.mprt, settings.mprt), (self.infidelity, settings.infidelity),
                              (self.sensitivity, settings.sensitivity),
                              (self.quick, evaluation.quick)):
            with QSignalBlocker(widget):
                if isinstance(widget, QSpinBox):
                    widget.setValue(int(value))
                else:
                    widget.setChecked(bool(value))

    # -- the view --------------------------------------------------------------------------
    def apply(self, view: EvaluationView) -> None:
        if self._shown == view.signature:
            return
        self._shown = view.signature
        arrived = view.curves is not None and (self._view is None or self._view.running)
        self._view = view
        with QSignalBlocker(self.strip_method):
            self.strip_method.clear()
            for name, label in view.strip_methods:
                self.strip_method.addItem(label, name)
            if view.strip_method is not None:
                select_value(self.strip_method, view.strip_method)
        self.cost.setText(view.cost_text)
        self.status.setText(view.status)
        self.run.setEnabled(view.can_run)
        self._fill_areas(view)
        self._fill_strip(view)
        self._fill_verdicts(view)
        for button in (self.save_curves, self.save_numbers):
            button.setEnabled(view.can_export)
        self._draw(force=True)
        if arrived:  # after the layout has taken the new rows in
            QTimer.singleShot(0, self._scroll_to_results)

    def _scroll_to_results(self) -> None:
        """An evaluation just finished: bring its curves to the top of the dock."""
        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QScrollArea):
            parent = parent.parentWidget()
        content = parent.widget() if parent is not None else None
        if parent is not None and content is not None:
            # from the status line ("Evaluated 2 methods for 5 classes in ...") down
            top = self.status.mapTo(content, QPoint(0, 0)).y()
            parent.verticalScrollBar().setValue(max(0, top - 4))

    def selected_curve(self) -> str:
        """The curve drawn ('' for all four)."""
        return str(self.curve.currentData())

    def _fill_areas(self, view: EvaluationView) -> None:
        rows = list(view.areas)
        self.areas.setRowCount(len(rows) + (1 if view.chance else 0))
        labels = []
        bold = QFont(self.font())
        bold.setBold(True)
        for r, row in enumerate(rows):
            labels.append((METHOD_REGISTRY[row.method].short_label, row.label))
            for c, (auc, best) in enumerate(zip(row.aucs, row.best)):
                item = area_item(auc, f"{row.label}, {CURVE_TITLES[CURVE_ORDER[c]]}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if best:
                    tied = [r.label for r in rows if r is not row and r.best[c]]
                    item.setFont(bold)
                    item.setBackground(QColor(BEST_BACKGROUND))
                    item.setToolTip(item.toolTip() + (
                        f" (tied for the best with {', '.join(tied)})" if tied
                        else " (the best method for this curve)"))
                self.areas.setItem(r, c, item)
        if view.chance:
            labels.append(("chance", "Chance: the mean of the random rankings"))
            for c, auc in enumerate(view.chance):
                item = area_item(auc, f"Chance's mean, {CURVE_TITLES[CURVE_ORDER[c]]}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setForeground(self.palette().color(QPalette.ColorRole.PlaceholderText))
                self.areas.setItem(len(rows), c, item)
        for r, (short, whole) in enumerate(labels):
            header_item = QTableWidgetItem(short)
            header_item.setToolTip(whole)
            self.areas.setVerticalHeaderItem(r, header_item)
        self.areas.fit_header()
        height = self.areas.horizontalHeader().sizeHint().height() + 2 * self.areas.frameWidth()
        height += self.areas.rowCount() * self.areas.verticalHeader().defaultSectionSize()
        self.areas.setFixedHeight(height + 2)

    def _fill_strip(self, view: EvaluationView) -> None:
        while self.strip_layout.count():
            item = self.strip_layout.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        for cell in view.strip:
            box = QWidget(self.strip)
            column = QVBoxLayout(box)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(2)
            image = QLabel(box)
            image.setObjectName("stripImage")
            pixmap = QPixmap.fromImage(to_qimage(cell.rgba))
            image.setPixmap(pixmap.scaled(90, 90, Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.FastTransformation))
            caption = QLabel(cell.caption, box)
            caption.setObjectName("stripCaption")
            font = caption.font()
            font.setPointSizeF(font.pointSizeF() * 0.8)
            caption.setFont(font)
            caption.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            column.addWidget(image, 0, Qt.AlignmentFlag.AlignTop)
            column.addWidget(caption, 0, Qt.AlignmentFlag.AlignTop)
            column.addStretch(1)  # captions of one and of two lines start level
            self.strip_layout.addWidget(box, 0, Qt.AlignmentFlag.AlignTop)
        self.strip_layout.addStretch(1)

    def _fill_verdicts(self, view: EvaluationView) -> None:
        lines = []
        for label, verdict, flagged in view.verdicts:
            text = f"<b>{label}</b>: {verdict}"
            if flagged:
                text = f"<span style='color:#c62828'>{text}</span>"
            lines.append(text)
        self.verdicts.setText("<br>".join(lines))

    def _draw(self, force: bool = False) -> None:
        view = self._view
        self.figure.clear()
        only = view.curve or None if view is not None else None
        self.canvas.setFixedHeight(ONE_CURVE_HEIGHT if only is not None or view is None
                                   or view.curves is None else ALL_CURVES_HEIGHT)
        if view is not None and view.curves is not None:
            draw_target(self.figure, view.curves, layout="stack",
                        colors=method_colors(list(view.curves.curves)), only=only)
        self.canvas.draw_idle()
