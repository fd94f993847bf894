"""The explanation panel: what to compute (may start a job) and how to draw it (never does)."""

from __future__ import annotations

from PySide6.QtCore import QStringListModel, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPalette, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QCompleter,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..engine.methods import METHOD_REGISTRY
from .document.catalog import baseline_label
from .document.choices import (
    AGGREGATION_LABELS,
    BASELINE_LABELS,
    COLORMAP_LABELS,
    COLORMAP_VIEWS,
    IG_RULE_LABELS,
    METHOD_LABELS,
    SEGMENT_LABELS,
    SHAPLEY_MODE_LABELS,
    SIGN_LABELS,
    SIGNED_ONLY_VIEWS,
    UPSAMPLE_LABELS,
    VIEW_LABELS,
    AnalysisChoice,
    ViewChoice,
)
from .document.panel_views import ShapleyView
from .shapley_panel import ShapleyPanel

CUSTOM_COLOUR = "__colour__"


def _combo(parent, labels: dict[str, str], name: str) -> QComboBox:
    combo = QComboBox(parent)
    combo.setObjectName(name)
    for value, label in labels.items():
        combo.addItem(label, value)
    return combo


def _select(combo: QComboBox, value) -> bool:
    index = combo.findData(value)
    if index >= 0:
        combo.setCurrentIndex(index)
    return index >= 0


def _spin(parent, name: str, low: int, high: int, tip: str, auto: bool = False) -> QSpinBox:
    spin = QSpinBox(parent)
    spin.setObjectName(name)
    spin.setRange(low, high)
    spin.setToolTip(tip)
    spin.setKeyboardTracking(False)  # one change when typing ends, not one per digit
    if auto:
        spin.setSpecialValueText("Auto")
        spin.setSuffix(" px")
    return spin


def section_label(text: str, parent) -> QLabel:
    label = QLabel(text.upper(), parent)
    font = label.font()
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * 0.85)
    label.setFont(font)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


class ExplanationPanel(QWidget):
    """Method, layer, aggregation, segments, baseline; view, sign, outlier %, options."""

    analysis_changed = Signal(object)  # AnalysisChoice
    view_changed = Signal(object)  # ViewChoice
    compute_requested = Signal()
    choose_layer_requested = Signal()

    def __init__(self, analysis: AnalysisChoice, view: ViewChoice, parent=None) -> None:
        super().__init__(parent)
        self._updating = False
        self._default_layer = ""
        self._last_baseline = "zero"
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 6, 8, 8)
        outer.setSpacing(6)

        self.target_label = QLabel(self)
        self.target_label.setObjectName("targetLabel")
        self.target_label.setWordWrap(True)
        self.target_label.setTextFormat(Qt.TextFormat.RichText)
        outer.addWidget(self.target_label)

        outer.addWidget(section_label("Attribution", self))
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        outer.addLayout(form)
        self.method = _combo(self, METHOD_LABELS, "methodCombo")
        self.method.setToolTip("Every method computes all classes from one set of model "
                               "evaluations; each equals its Captum call.")
        for i in range(self.method.count()):
            info = METHOD_REGISTRY[str(self.method.itemData(i))]
            self.method.setItemData(i, f"{info.summary} Equals {info.equals}.",
                                    Qt.ItemDataRole.ToolTipRole)
        form.addRow("Method", self.method)
        self.method_note = QLabel(self)
        self.method_note.setObjectName("methodNote")
        self.method_note.setWordWrap(True)
        self.method_note.setVisible(False)
        form.addRow("", self.method_note)

        layer_row = QHBoxLayout()
        layer_row.setSpacing(4)
        self.layer = QLineEdit(self)
        self.layer.setObjectName("layerEdit")
        self.layer.setPlaceholderText("default layer")
        self.layer.setToolTip("Type a dotted layer path (completed from the model's layers) "
                              "and press Enter, or choose one with ...")
        self._layer_names = QStringListModel(self)
        completer = QCompleter(self._layer_names, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.layer.setCompleter(completer)
        self.choose_layer = QToolButton(self)
        self.choose_layer.setText("...")
        self.choose_layer.setToolTip("Choose a layer from the model's module tree")
        self.reset_layer = QToolButton(self)
        self.reset_layer.setText("Reset")
        self.reset_layer.setToolTip("Back to the architecture's default layer")
        layer_row.addWidget(self.layer, 1)
        layer_row.addWidget(self.choose_layer)
        layer_row.addWidget(self.reset_layer)
        self.layer_label = QLabel("Layer", self)
        form.addRow(self.layer_label, layer_row)

        self.aggregation = _combo(self, AGGREGATION_LABELS, "aggregationCombo")
        self.aggregation.setToolTip("How per-pixel scores become one score per class: the "
                                    "seed sums each class's score over the pixels predicted "
                                    "as that class.")
        form.addRow("Score", self.aggregation)
        self.upsample = _combo(self, UPSAMPLE_LABELS, "upsampleCombo")
        self.upsample_label = QLabel("Upsampling", self)
        form.addRow(self.upsample_label, self.upsample)
        self.segments = _combo(self, SEGMENT_LABELS, "segmentsCombo")
        self.segments_label = QLabel("Segments", self)
        form.addRow(self.segments_label, self.segments)
        self.baseline = _combo(self, BASELINE_LABELS, "baselineCombo")
        self.baseline.addItem("Colour...", CUSTOM_COLOUR)
        self.baseline_label = QLabel("Baseline", self)
        form.addRow(self.baseline_label, self.baseline)
        # the other methods' options: a row is shown only for the methods that read it
        self.steps_spin = _spin(self, "stepsSpin", 1, 1000, "Integrated gradients: steps of "
                             "the integral (Captum's n_steps; 50 by default).")
        self.integral_combo = _combo(self, IG_RULE_LABELS, "integralCombo")
        self.integral_combo.setToolTip("Integrated gradients: Captum's approximation of the "
                                  "integral.")
        self.window_spin = _spin(self, "windowSpin", 0, 4096, "Occlusion: the sliding window's "
                            "side (Auto: an eighth of the image's shorter side).", auto=True)
        self.stride_spin = _spin(self, "strideSpin", 0, 4096, "Occlusion: how far the window "
                            "moves each time (Auto: half the window).", auto=True)
        self.samples_spin = _spin(self, "samplesSpin", 1, 100000, "Shapley values, sampled: "
                               "random orders (permutations) of the segments (Captum's n_samples).")
        self.shapley_mode_combo = _combo(self, SHAPLEY_MODE_LABELS, "shapleyModeCombo")
        self.shapley_mode_combo.setToolTip("Exact values evaluate every coalition of segments "
                                     "(2^S forward passes); sampled ones average random "
                                     "orders.")
        self._option_rows: dict[str, tuple[QWidget, ...]] = {}
        for name, label, widget in (("n_steps", "Steps", self.steps_spin),
                                    ("ig_method", "Integral", self.integral_combo),
                                    ("window", "Window", self.window_spin),
                                    ("stride", "Stride", self.stride_spin),
                                    ("shapley_mode", "Shapley", self.shapley_mode_combo),
                                    ("n_samples", "Samples", self.samples_spin)):
            text = QLabel(label, self)
            form.addRow(text, widget)
            self._option_rows[name] = (text, widget)

        compute_row = QHBoxLayout()
        self.status = QLabel(self)
        self.status.setObjectName("explainStatus")
        self.status.setWordWrap(True)
        # room for four lines: a longer message does not push the rows below it
        self.status.setMinimumHeight(4 * self.status.fontMetrics().lineSpacing())
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.status.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.compute = QPushButton("Compute", self)
        self.compute.setObjectName("computeButton")
        self.compute.setToolTip("Run the computation this view needs")
        compute_row.addWidget(self.status, 1)
        compute_row.addWidget(self.compute, 0, Qt.AlignmentFlag.AlignTop)
        outer.addLayout(compute_row)
        self.shapley = ShapleyPanel(self)
        self.shapley.setObjectName("shapleyPanel")
        outer.addWidget(self.shapley)

        line = QFrame(self)
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        outer.addWidget(line)
        outer.addWidget(section_label("Display", self))
        view_form = QFormLayout()
        view_form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        view_form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        outer.addLayout(view_form)
        self.view = _combo(self, VIEW_LABELS, "viewCombo")
        view_form.addRow("View", self.view)
        self.sign = _combo(self, SIGN_LABELS, "signCombo")
        view_form.addRow("Sign", self.sign)
        self.colormap = _combo(self, COLORMAP_LABELS, "colormapCombo")
        self.colormap.setToolTip("The heat map's colours: Captum's (green/red for both "
                                 "signs, greens, reds or blues for one) or another matplotlib "
                                 "map, as Captum's cmap argument draws it")
        self.colormap_label = QLabel("Colour map", self)
        view_form.addRow(self.colormap_label, self.colormap)
        self.outlier = QDoubleSpinBox(self)
        self.outlier.setObjectName("outlierSpin")
        self.outlier.setRange(0.0, 50.0)
        self.outlier.setSingleStep(0.5)
        self.outlier.setDecimals(1)
        self.outlier.setSuffix(" %")
        self.outlier.setToolTip("Captum's outlier_perc: this share of the total attribution "
                                "is clipped so that a few extreme values do not wash out "
                                "the colour scale.")
        view_form.addRow("Clip outliers", self.outlier)
        self.hide_target = QCheckBox("Hide the target segment", self)
        self.hide_target.setObjectName("hideTargetCheck")
        self.hide_target.setToolTip("Set the attribution of the target's own pixels to 0 (the "
                                    "seed's last view) to compare the other regions.")
        self.side_by_side = QCheckBox("Side by side (image, all, +, -)", self)
        self.side_by_side.setObjectName("sideBySideCheck")
        self.side_by_side.setToolTip("Like Captum's visualize_image_attr_multiple: the image "
                                     "and the attribution with each sign.")
        view_form.addRow("", self.hide_target)
        view_form.addRow("", self.side_by_side)
        outer.addStretch(1)

        self._outlier_timer = QTimer(self)
        self._outlier_timer.setSingleShot(True)
        self._outlier_timer.setInterval(60)  # coalesce spin-box key repeat
        self._outlier_timer.timeout.connect(self._emit_view)

        self.set_analysis(analysis)
        self.set_view(view)
        for combo in (self.method, self.aggregation, self.upsample, self.segments,
                      self.integral_combo, self.shapley_mode_combo):
            combo.currentIndexChanged.connect(self._emit_analysis)
        for spin in (self.steps_spin, self.window_spin, self.stride_spin, self.samples_spin):
            spin.valueChanged.connect(self._emit_analysis)
        self.baseline.activated.connect(self._on_baseline_activated)
        self.baseline.currentIndexChanged.connect(self._on_baseline_changed)
        self.choose_layer.clicked.connect(self.choose_layer_requested)
        self.reset_layer.clicked.connect(lambda: self.set_layer(""))
        self.layer.returnPressed.connect(lambda: self.set_layer(self.layer.text().strip()))
        for combo in (self.view, self.sign, self.colormap):
            combo.currentIndexChanged.connect(self._on_view_combo)
        self.outlier.valueChanged.connect(lambda _v: self._outlier_timer.start())
        self.hide_target.toggled.connect(self._emit_view)
        self.side_by_side.toggled.connect(self._emit_view)
        self.compute.clicked.connect(self.compute_requested)

    # -- choices -------------------------------------------------------------------------------
    def analysis(self) -> AnalysisChoice:
        return AnalysisChoice(
            method=str(self.method.currentData()),
            layer=self.layer.text().strip() if self.layer.text().strip() != self._default_layer
            else "",
            aggregation=str(self.aggregation.currentData()),
            upsample=str(self.upsample.currentData()),
            segments=str(self.segments.currentData()),
            baseline=str(self.baseline.currentData()),
            n_steps=self.steps_spin.value(),
            ig_method=str(self.integral_combo.currentData()),
            window=self.window_spin.value(),
            stride=self.stride_spin.value(),
            n_samples=self.samples_spin.value(),
            shapley_mode=str(self.shapley_mode_combo.currentData()),
        )

    def view_choice(self) -> ViewChoice:
        return ViewChoice(
            view=str(self.view.currentData()),
            sign=str(self.sign.currentData()),
            outlier=float(self.outlier.value()),
            hide_target=self.hide_target.isChecked(),
            side_by_side=self.side_by_side.isChecked(),
            colormap=str(self.colormap.currentData() or ""),
        )

    def set_analysis(self, choice: AnalysisChoice) -> None:
        self._updating = True
        try:
            _select(self.method, choice.method)
            self._show_layer(choice.layer or self._default_layer)
            _select(self.aggregation, choice.aggregation)
            _select(self.upsample, choice.upsample)
            _select(self.segments, choice.segments)
            self._select_baseline(choice.baseline)
            self._last_baseline = str(self.baseline.currentData())
            self.steps_spin.setValue(choice.n_steps)
            _select(self.integral_combo, choice.ig_method)
            self.window_spin.setValue(choice.window)
            self.stride_spin.setValue(choice.stride)
            self.samples_spin.setValue(choice.n_samples)
            _select(self.shapley_mode_combo, choice.shapley_mode)
        finally:
            self._updating = False
        self._update_enabled()

    def set_view(self, choice: ViewChoice) -> None:
        self._updating = True
        try:
            _select(self.view, choice.view)
            _select(self.sign, choice.sign)
            _select(self.colormap, choice.colormap)
            self.outlier.setValue(float(choice.outlier))
            self.hide_target.setChecked(bool(choice.hide_target))
            self.side_by_side.setChecked(bool(choice.side_by_side))
            self._enforce_sign()
        finally:
            self._updating = False

    def set_method(self, method: str) -> None:
        _select(self.method, method)

    def set_segments(self, kind: str) -> None:
        """Choose class or component segments (the ablation panel mirrors this choice)."""
        _select(self.segments, kind)

    def set_baseline(self, value: str) -> None:
        if value != self.baseline.currentData():
            self._select_baseline(value)

    def set_sign(self, sign: str) -> None:
        _select(self.sign, sign)

    def set_view_method(self, view: str) -> None:
        _select(self.view, view)

    def set_layer(self, path: str) -> None:
        self._show_layer(path or self._default_layer)
        self._emit_analysis()

    def set_layer_names(self, names: list[str]) -> None:
        """The layers the field completes (the loaded model's)."""
        if names != self._layer_names.stringList():
            self._layer_names.setStringList(names)

    def _show_layer(self, path: str) -> None:
        self.layer.setText(path)
        self.layer.setCursorPosition(0)  # the start of a long dotted path says most
        self.layer.setToolTip(path)

    def set_default_layer(self, path: str) -> None:
        """The architecture's default layer, shown when no other is chosen."""
        if path == self._default_layer:
            return
        current = self.analysis().layer
        self._default_layer = path
        self._show_layer(current or path)

    def set_target_text(self, html: str) -> None:
        self.target_label.setText(html)

    def set_status(self, text: str, can_compute: bool) -> None:
        self.status.setText(text)
        self.compute.setEnabled(can_compute)

    def set_method_note(self, text: str) -> None:
        """A warning about the chosen method (empty: none)."""
        self.method_note.setText(text)
        self.method_note.setVisible(bool(text))

    def set_shapley(self, view: ShapleyView | None) -> None:
        self.shapley.apply(view)

    # -- internals ----------------------------------------------------------------------------
    def _select_baseline(self, value: str) -> None:
        if _select(self.baseline, value):
            return
        label = baseline_label(value)
        if label is None:
            _select(self.baseline, "zero")
            return
        self.baseline.insertItem(self.baseline.count() - 1, label, label)
        _select(self.baseline, label)

    def _on_baseline_activated(self, index: int) -> None:
        if self.baseline.itemData(index) != CUSTOM_COLOUR:
            return
        previous = self._last_baseline
        colour = QColorDialog.getColor(QColor(128, 128, 128), self, "Baseline colour")
        self._updating = True
        try:
            self._select_baseline(colour.name() if colour.isValid() else previous)
        finally:
            self._updating = False
        self._emit_analysis()

    def _on_baseline_changed(self, index: int) -> None:
        if self.baseline.itemData(index) == CUSTOM_COLOUR:
            return
        self._emit_analysis()

    def _emit_analysis(self) -> None:
        self._update_enabled()
        if self._updating:
            return
        choice = self.analysis()
        self._last_baseline = choice.baseline
        self.analysis_changed.emit(choice)

    def _on_view_combo(self) -> None:
        if self._updating:
            return
        self._enforce_sign()
        self._emit_view()

    def _enforce_sign(self) -> None:
        # Captum cannot mask or alpha-scale with both signs: 'all' is not offered there
        # (the document turns it into 'positive': ViewChoice.valid).
        uses_map = self.view.currentData() in COLORMAP_VIEWS
        self.colormap.setEnabled(uses_map)
        self.colormap_label.setEnabled(uses_map)
        signed_only = self.view.currentData() in SIGNED_ONLY_VIEWS
        model = self.sign.model()
        if isinstance(model, QStandardItemModel):
            item = model.item(self.sign.findData("all"))
            if item is not None:
                item.setEnabled(not signed_only)

    def _emit_view(self) -> None:
        if self._updating:
            return
        self._outlier_timer.stop()
        self.view_changed.emit(self.view_choice())

    def _update_enabled(self) -> None:
        """The method's options are enabled (the registry says which it reads); the
        options only some methods have are shown only for them."""
        uses = METHOD_REGISTRY[str(self.method.currentData())].uses
        widgets: tuple[QWidget, ...] = (self.layer_label, self.layer, self.choose_layer,
                                        self.reset_layer)
        for widget in widgets:
            widget.setEnabled("layer" in uses)
        self.upsample_label.setEnabled("upsample" in uses)
        self.upsample.setEnabled("upsample" in uses)
        self.aggregation.setEnabled("aggregation" in uses)
        for widget in (self.segments_label, self.segments):
            widget.setEnabled("segments" in uses)
        for widget in (self.baseline_label, self.baseline):
            widget.setEnabled("baseline" in uses)
        for name, row in self._option_rows.items():
            for widget in row:
                widget.setVisible(name in uses)
