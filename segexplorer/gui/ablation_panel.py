"""The ablation panel: what one click did, every class's score, and the history.

Its choices are the document's: the segments and the baseline (the analysis state), the
view shown, the tool and the brush's size (the ablation state), each widget bound to
one field (:meth:`AblationPanel.bind`); the rest shows the presenter's
``AblationView`` (through :class:`~.ablate_mode.AblateController`). It computes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFontMetrics, QIcon, QPalette, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..render import VIEW_AFTER, VIEW_CHANGED, VIEW_INPUT
from .binding import bind_combo, bind_spin, enum_combo, on_fields, relabel
from .document.ablation import HINT, VIEW_LABELS
from .document.choices import SEGMENT_LABELS
from .document.labels import SCORES_TIP, SCORES_TITLE
from .explain_panel import bind_baseline, section_label
from .imaging import to_pixmap
from .score_chart import ScoreChart

if TYPE_CHECKING:
    from .document.ablation import AblationState
    from .document.states import AnalysisState

THUMB_CAPTIONS = {  # two lines, so that three thumbnails fit a narrow dock
    VIEW_INPUT: "Ablated\ninput",
    VIEW_AFTER: "New\nsegmentation",
    VIEW_CHANGED: "Changed\npixels",
}
VIEW_TIPS = {
    VIEW_INPUT: "The input exactly as the model receives it (de-normalised for display)",
    VIEW_AFTER: "The model's prediction for the ablated input, over it",
    VIEW_CHANGED: "Pixels whose predicted class changed, in magenta",
}
THUMB_WIDTH = 88
SEGMENTS_TIP = ("What one click selects: every pixel of the class, or the connected region "
                "under the cursor")
__all__ = ["HINT", "VIEW_AFTER", "VIEW_CHANGED", "VIEW_INPUT", "VIEW_LABELS", "AblationPanel"]


def _muted(text: str, parent) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


class AblationPanel(QWidget):
    """Segments and baseline, the result views, the score chart and the history."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("ablationPanel")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        # nothing in it is wider than a narrow dock; should a font make it so, it scrolls
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        outer.addWidget(scroll)
        body = QWidget(scroll)
        scroll.setWidget(body)
        column = QVBoxLayout(body)
        column.setContentsMargins(8, 6, 8, 8)
        column.setSpacing(6)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.segments = enum_combo(body, SEGMENT_LABELS, "ablationSegments")
        self.segments.setToolTip(SEGMENTS_TIP)
        self.baseline = QComboBox(body)
        self.baseline.setObjectName("ablationBaseline")
        self.baseline.setToolTip("What the ablated pixels are replaced with: the ImageNet "
                                 "mean, black, a blurred copy, or a colour you choose")
        for combo in (self.segments, self.baseline):  # narrow docks: no wider than needed
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
        form.addRow("Segments", self.segments)
        form.addRow("Baseline", self.baseline)
        tools = QHBoxLayout()
        self.tool_buttons = QButtonGroup(self)
        self._tool: dict[str, QToolButton] = {}
        for tool, label, tip in (
                ("click", "Click", "Click a segment to ablate it (Shift+click adds one)"),
                ("brush", "Brush", "Paint a region to ablate (a drag)"),
                ("lasso", "Lasso", "Draw around a region to ablate (a drag)")):
            button = QToolButton(body)
            button.setText(label)
            button.setToolTip(tip)
            button.setCheckable(True)
            button.setObjectName(f"ablationTool_{tool}")
            self.tool_buttons.addButton(button)
            self._tool[tool] = button
            tools.addWidget(button)
        tools.addStretch(1)
        self._tool["click"].setChecked(True)
        form.addRow("Select", tools)
        self.brush_size = QSpinBox(body)
        self.brush_size.setObjectName("ablationBrushSize")
        self.brush_size.setRange(1, 200)
        self.brush_size.setValue(6)
        self.brush_size.setSuffix(" px")
        self.brush_size.setToolTip("The brush's radius, in working pixels")
        form.addRow("Brush", self.brush_size)
        column.addLayout(form)

        self.summary = QLabel(body)
        self.summary.setObjectName("ablationSummary")
        self.summary.setWordWrap(True)
        font = self.summary.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.summary.setFont(font)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # two lines kept for the summary and three for the details: the thumbnails and
        # buttons below do not jump when a summary wraps
        self.summary.setMinimumHeight(2 * QFontMetrics(font).lineSpacing())
        column.addWidget(self.summary)
        self.details = _muted("", body)
        self.details.setObjectName("ablationDetails")
        self.details.setMinimumHeight(3 * self.details.fontMetrics().lineSpacing())
        self.details.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        column.addWidget(self.details)

        thumbs = QHBoxLayout()
        thumbs.setSpacing(4)
        self.view_buttons = QButtonGroup(self)
        self.view_buttons.setExclusive(True)
        self._thumb: dict[str, QToolButton] = {}
        for view, label in VIEW_LABELS.items():
            button = QToolButton(body)
            button.setObjectName(f"ablationThumb_{view}")
            button.setText(THUMB_CAPTIONS[view])
            button.setToolTip(f"{label}: {VIEW_TIPS[view].lower()}. Click to show it on the "
                              "image.")
            button.setCheckable(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            button.setIconSize(QSize(THUMB_WIDTH, THUMB_WIDTH * 3 // 4))
            button.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            button.setMinimumWidth(60)
            self.view_buttons.addButton(button)
            self._thumb[view] = button
            thumbs.addWidget(button)
        column.addLayout(thumbs)

        buttons = QHBoxLayout()
        self.reset_button = QPushButton("Reset", body)
        self.reset_button.setObjectName("ablationReset")
        self.reset_button.setToolTip("Back to the original image (Esc)")
        self.export_button = QPushButton("Export ablation...", body)
        self.export_button.setObjectName("ablationExport")
        self.export_button.setToolTip("Write what 'segexplorer ablate' writes: the ablated "
                                      "input, the new segmentation, the changed pixels and "
                                      "changes.json")
        buttons.addWidget(self.reset_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        column.addLayout(buttons)

        self.scores_title = scores_title = section_label(SCORES_TITLE, body)
        scores_title.setWordWrap(True)
        column.addWidget(scores_title)
        self.chart = ScoreChart(body)
        self.chart.setToolTip(SCORES_TIP)
        scores_title.setToolTip(self.chart.toolTip())
        column.addWidget(self.chart)

        column.addWidget(section_label("History", body))
        self.history = QListWidget(body)
        self.history.setObjectName("ablationHistory")
        self.history.setMinimumHeight(90)
        self.history.setWordWrap(True)
        self.history.setToolTip("Ablations of this image: click one to show it again")
        column.addWidget(self.history, 1)
        history_row = QHBoxLayout()
        self.sweep_status = _muted("", body)
        self.sweep_status.setObjectName("ablationSweepStatus")
        self.precompute_button = QPushButton("Precompute", body)
        self.precompute_button.setObjectName("ablationPrecompute")
        self.precompute_button.setToolTip("Run the ablation sweep (one forward pass per "
                                          "segment) so that every single-segment click is "
                                          "answered at once")
        history_row.addWidget(self.sweep_status, 1)
        history_row.addWidget(self.precompute_button, 0, Qt.AlignmentFlag.AlignTop)
        column.addLayout(history_row)
        self.export_history_button = QPushButton("Export history...", body)
        self.export_history_button.setObjectName("ablationExportHistory")
        self.export_history_button.setToolTip("Every ablation of this image in one JSON file")
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.export_history_button)
        column.addLayout(row)

        self.show_nothing()

    # -- binding ------------------------------------------------------------------------------
    def bind(self, ablation: AblationState, analysis: AnalysisState,
             export: Callable[[], None], export_history: Callable[[], None]) -> None:
        """Each widget edits one field (or asks the ablation for something)."""
        bind_combo(self.segments, analysis, "segments")
        bind_baseline(self.baseline, analysis, self)
        for tool, button in self._tool.items():
            button.clicked.connect(lambda _c=False, t=tool: ablation.set_tool(t))
        on_fields(ablation, "tool", lambda: self._tool[ablation.tool].setChecked(True))
        for view, button in self._thumb.items():
            button.clicked.connect(lambda _c=False, v=view: ablation.set_view(v))
        on_fields(ablation, "view", lambda: self._thumb[ablation.view].setChecked(True))
        bind_spin(self.brush_size, ablation, "brush_radius",
                  edit=lambda value: setattr(ablation, "brush_radius", float(value)))
        self.reset_button.clicked.connect(lambda: ablation.reset())
        self.export_button.clicked.connect(export)
        self.export_history_button.clicked.connect(export_history)
        self.precompute_button.clicked.connect(lambda: ablation.precompute_sweep())
        self.history.itemClicked.connect(
            lambda item: ablation.show_history(self.history.row(item)))
        self.history.itemActivated.connect(
            lambda item: ablation.show_history(self.history.row(item)))

    def tool_button(self, tool: str) -> QToolButton:
        return self._tool[tool]

    def set_model_words(self, segment_labels: tuple[tuple[str, str], ...], segments_tip: str,
                        changed_tip: str, scores: tuple[str, str] = ("", "")) -> None:
        """The model's own words: a multi-label model's segments are label sets
        (``segments_tip`` says so; '' keeps the usual tip), its changed pixels are
        those whose set of classes changed, and its scores sum over each class's own
        mask (``scores``: the chart's title and tooltip)."""
        title, tip = scores
        if title and self.scores_title.text() != title.upper():
            self.scores_title.setText(title.upper())
            self.chart.setToolTip(tip)
            self.scores_title.setToolTip(tip)
        if segment_labels:
            relabel(self.segments, segment_labels)
        self.segments.setToolTip(segments_tip or SEGMENTS_TIP)
        if changed_tip:
            self._thumb[VIEW_CHANGED].setToolTip(
                f"{VIEW_LABELS[VIEW_CHANGED]}: {changed_tip.lower()}. Click to show it on "
                "the image.")


    # -- results ----------------------------------------------------------------------------
    def show_nothing(self, thumbnails: dict[str, np.ndarray] | None = None) -> None:
        """No segment selected: the original image in the thumbnails, an empty chart."""
        self.summary.setText("Nothing ablated")
        self.details.setText(HINT)
        self.chart.clear()
        self.set_thumbnails(thumbnails)
        self.reset_button.setEnabled(False)
        self.export_button.setEnabled(False)

    def show_result(self, summary: str, details: str, thumbnails: dict[str, np.ndarray],
                    categories, colors, before, after, emphasis) -> None:
        self.summary.setText(summary)
        self.details.setText(details)
        self.set_thumbnails(thumbnails)
        self.chart.set_scores(categories, colors, before, after, emphasis)
        self.reset_button.setEnabled(True)
        self.export_button.setEnabled(True)

    def show_status(self, what: str, details: str) -> None:
        """The selection has no result yet (computing, or it failed): say so."""
        self.summary.setText(what)
        self.details.setText(details)
        self.reset_button.setEnabled(True)
        self.export_button.setEnabled(False)

    def set_thumbnails(self, thumbnails: dict[str, np.ndarray] | None) -> None:
        for view, button in self._thumb.items():
            image = (thumbnails or {}).get(view)
            button.setIcon(QIcon(self._thumbnail(image)) if image is not None else QIcon())
            button.setEnabled(image is not None)

    def thumbnail(self, view: str) -> QIcon:
        return self._thumb[view].icon()

    def thumb_button(self, view: str) -> QToolButton:
        return self._thumb[view]

    def _thumbnail(self, image: np.ndarray) -> QPixmap:
        box = self._thumb[VIEW_INPUT].iconSize()
        # skip pixels first (a thumbnail of a 948 x 640 image needs a few percent of them),
        # then scale smoothly
        step = max(1, min(image.shape[0] // (2 * box.height()), image.shape[1] // (2 * box.width())))
        pixmap = to_pixmap(np.ascontiguousarray(image[::step, ::step]))
        return pixmap.scaled(box, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)

    # -- history and sweep -------------------------------------------------------------------
    def set_history(self, entries: list[tuple[str, str]], current: int | None) -> None:
        """``entries``: (text, tooltip) per ablation, oldest first; ``current``: shown one."""
        self.history.blockSignals(True)
        try:
            self.history.clear()
            for text, tip in entries:
                item = QListWidgetItem(text)
                item.setToolTip(tip)
                self.history.addItem(item)
            if current is not None:
                self.history.setCurrentRow(current)
            else:
                self.history.clearSelection()
                self.history.setCurrentRow(-1)
        finally:
            self.history.blockSignals(False)
        self.export_history_button.setEnabled(bool(entries))

    def history_texts(self) -> list[str]:
        return [self.history.item(i).text() for i in range(self.history.count())]

    def set_sweep_status(self, text: str, can_precompute: bool) -> None:
        self.sweep_status.setText(text)
        self.precompute_button.setVisible(can_precompute)
