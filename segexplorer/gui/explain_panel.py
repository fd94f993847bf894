"""The explanation panel: what to compute (the analysis state: may start a job) and how to
draw it (the view state: never does). Each widget edits one field of its state and shows
it when it changes (:meth:`ExplanationPanel.bind`); the status, the target line, the
method's note, the Shapley section and the layer field come from the presenter's
:class:`~.document.explain_view.ExplainView` (:meth:`ExplanationPanel.apply`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSignalBlocker, QStringListModel, Qt
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
from .binding import (
    bind_check,
    bind_combo,
    bind_spin,
    enum_combo,
    on_fields,
    relabel,
    select_value,
    set_item_tooltips,
)
from .document.choices import (
    AGGREGATION_LABELS,
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
)
from .document.explain_view import ExplainView
from .layer_picker import LayerPicker
from .shapley_panel import ShapleyPanel

if TYPE_CHECKING:
    from .document.model_layers import ModelLayers
    from .document.states import AnalysisState, ViewState

CUSTOM_COLOUR = "__colour__"
OUTLIER_DEBOUNCE_MS = 60  # coalesce spin-box key repeat
#: the option rows only some methods read: (field, label, widget attribute)
OPTION_ROWS = (("n_steps", "Steps", "steps_spin"), ("ig_method", "Integral", "integral_combo"),
               ("window", "Window", "window_spin"), ("stride", "Stride", "stride_spin"),
               ("shapley_mode", "Shapley", "shapley_mode_combo"),
               ("n_samples", "Samples", "samples_spin"))


def _spin(parent: QWidget, name: str, low: int, high: int, tip: str,
          auto: bool = False) -> QSpinBox:
    spin = QSpinBox(parent)
    spin.setObjectName(name)
    spin.setRange(low, high)
    spin.setToolTip(tip)
    spin.setKeyboardTracking(False)  # one change when typing ends, not one per digit
    if auto:
        spin.setSpecialValueText("Auto")
        spin.setSuffix(" px")
    return spin


def section_label(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text.upper(), parent)
    font = label.font()
    font.setBold(True)
    font.setPointSizeF(font.pointSizeF() * 0.85)
    label.setFont(font)
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


def fill_baselines(combo: QComboBox, baselines: tuple[tuple[str, str], ...]) -> None:
    """The baselines offered (the engine's, then the colours chosen), then 'Colour...'."""
    values = [combo.itemData(i) for i in range(combo.count())]
    if values == [value for value, _label in baselines] + [CUSTOM_COLOUR]:
        return
    with QSignalBlocker(combo):
        current = combo.currentData()
        combo.clear()
        for value, label in baselines:
            combo.addItem(label, value)
        combo.addItem("Colour...", CUSTOM_COLOUR)
        select_value(combo, current)


def bind_baseline(combo: QComboBox, analysis: AnalysisState, parent: QWidget) -> None:
    """A baseline list edits ``analysis.baseline``; 'Colour...' asks for a colour (the
    list shows the baseline in use again if none is chosen)."""
    def chosen(index: int) -> None:
        if combo.itemData(index) != CUSTOM_COLOUR:
            return
        colour = QColorDialog.getColor(QColor(128, 128, 128), parent, "Baseline colour")
        if colour.isValid():
            analysis.baseline = colour.name()
        show()

    def show() -> None:
        fill_baselines(combo, analysis.baselines())
        select_value(combo, analysis.baseline)

    combo.activated.connect(chosen)
    combo.currentIndexChanged.connect(
        lambda i: analysis.update(baseline=str(combo.itemData(i)))
        if combo.itemData(i) not in (CUSTOM_COLOUR, None) else None)
    on_fields(analysis, ("baseline", "custom_baselines"), show)


class ExplanationPanel(QWidget):
    """Method, layer, aggregation, segments, baseline; view, sign, outlier %, options."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layer_shown: str | None = ""  # the layer last shown (typing is kept)
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
        self.method = enum_combo(self, METHOD_LABELS, "methodCombo")
        self.method.setToolTip("Every method computes all classes from one set of model "
                               "evaluations; each equals its Captum call.")
        set_item_tooltips(self.method, {name: f"{info.summary} Equals {info.equals}."
                                        for name, info in METHOD_REGISTRY.items()})
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
        self.layer_picker: LayerPicker | None = None

        self.aggregation = enum_combo(self, AGGREGATION_LABELS, "aggregationCombo")
        self.aggregation.setToolTip("How per-pixel scores become one score per class: the "
                                    "seed sums each class's score over the pixels predicted "
                                    "as that class.")
        form.addRow("Score", self.aggregation)
        self.upsample = enum_combo(self, UPSAMPLE_LABELS, "upsampleCombo")
        self.upsample_label = QLabel("Upsampling", self)
        form.addRow(self.upsample_label, self.upsample)
        self.segments = enum_combo(self, SEGMENT_LABELS, "segmentsCombo")
        self.segments_label = QLabel("Segments", self)
        form.addRow(self.segments_label, self.segments)
        self.baseline = QComboBox(self)
        self.baseline.setObjectName("baselineCombo")
        self.baseline_label = QLabel("Baseline", self)
        form.addRow(self.baseline_label, self.baseline)
        # the other methods' options: a row is shown only for the methods that read it
        self.steps_spin = _spin(self, "stepsSpin", 1, 1000, "Integrated gradients: steps of "
                                "the integral (Captum's n_steps; 50 by default).")
        self.integral_combo = enum_combo(self, IG_RULE_LABELS, "integralCombo")
        self.integral_combo.setToolTip("Integrated gradients: Captum's approximation of the "
                                       "integral.")
        self.window_spin = _spin(self, "windowSpin", 0, 4096, "Occlusion: the sliding "
                                 "window's side (Auto: an eighth of the image's shorter "
                                 "side).", auto=True)
        self.stride_spin = _spin(self, "strideSpin", 0, 4096, "Occlusion: how far the window "
                                 "moves each time (Auto: half the window).", auto=True)
        self.samples_spin = _spin(self, "samplesSpin", 1, 100000, "Shapley values, sampled: "
                                  "random orders (permutations) of the segments (Captum's "
                                  "n_samples).")
        self.shapley_mode_combo = enum_combo(self, SHAPLEY_MODE_LABELS, "shapleyModeCombo")
        self.shapley_mode_combo.setToolTip("Exact values evaluate every coalition of "
                                           "segments (2^S forward passes); sampled ones "
                                           "average random orders.")
        self._option_rows: dict[str, tuple[QWidget, ...]] = {}
        for name, label, attribute in OPTION_ROWS:
            text = QLabel(label, self)
            form.addRow(text, getattr(self, attribute))
            self._option_rows[name] = (text, getattr(self, attribute))

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
        self.view = enum_combo(self, VIEW_LABELS, "viewCombo")
        view_form.addRow("View", self.view)
        self.sign = enum_combo(self, SIGN_LABELS, "signCombo")
        view_form.addRow("Sign", self.sign)
        self.colormap = enum_combo(self, COLORMAP_LABELS, "colormapCombo")
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
        for box in (self.hide_target, self.side_by_side):  # both columns: no cut text
            view_form.addRow(box)
        outer.addStretch(1)

    # -- binding ---------------------------------------------------------------------------
    def bind(self, analysis: AnalysisState, view: ViewState, layers: ModelLayers,
             compute: object) -> None:
        """Each widget edits one field of ``analysis`` or ``view`` and shows it; Compute
        calls ``compute``; the layer picker asks ``layers``."""
        for combo, name in ((self.method, "method"), (self.aggregation, "aggregation"),
                            (self.upsample, "upsample"), (self.segments, "segments"),
                            (self.integral_combo, "ig_method"),
                            (self.shapley_mode_combo, "shapley_mode")):
            bind_combo(combo, analysis, name)
        for spin, name in ((self.steps_spin, "n_steps"), (self.window_spin, "window"),
                           (self.stride_spin, "stride"), (self.samples_spin, "n_samples")):
            bind_spin(spin, analysis, name)
        bind_baseline(self.baseline, analysis, self)
        on_fields(analysis, "method", lambda: self._show_options(analysis.method))
        self.layer.returnPressed.connect(
            lambda: setattr(analysis, "layer", self.layer.text().strip()))
        # the layer field shows the layer in use again after an edit (a refused one too)
        on_fields(analysis, "layer", lambda: setattr(self, "_layer_shown", None), now=False)
        self.reset_layer.clicked.connect(lambda: setattr(analysis, "layer", ""))
        self.choose_layer.clicked.connect(lambda: self.open_layer_picker(analysis, layers))
        for combo, name in ((self.view, "view"), (self.sign, "sign"),
                            (self.colormap, "colormap")):
            bind_combo(combo, view, name)
        self._outlier = bind_spin(self.outlier, view, "outlier", debounce_ms=OUTLIER_DEBOUNCE_MS,
                                  edit=lambda v: setattr(view, "outlier", float(v)))
        bind_check(self.hide_target, view, "hide_target")
        bind_check(self.side_by_side, view, "side_by_side")
        on_fields(view, "view", lambda: self._show_signs(view.view))
        self.compute.clicked.connect(compute)  # type: ignore[arg-type]

    def open_layer_picker(self, analysis: AnalysisState, layers: ModelLayers) -> None:
        """The layer tree; the engine's audit (shapes, usability) fills it in a job."""
        names = layers.names()
        if not names:
            self.window().statusBar().showMessage(  # type: ignore[attr-defined]
                "Load a model first.", 3000)
            return
        default = layers.default()
        picker = LayerPicker(names, analysis.layer or default, default, self)
        picker.layer_chosen.connect(lambda path: setattr(analysis, "layer", path))
        self.layer_picker = picker
        found = layers.audit()
        if isinstance(found, str):
            picker.set_shapes_error(found)
        elif found is not None:
            picker.set_audit(found)
        else:
            def deliver(infos: list[Any]) -> None:
                if self.layer_picker is picker:
                    picker.set_audit(infos)

            layers.audited.connect(deliver)
            picker.finished.connect(lambda _r: layers.audited.disconnect(deliver))
        picker.open()

    # -- showing ---------------------------------------------------------------------------
    def apply(self, view: ExplainView) -> None:
        self.status.setText(view.status)
        self.compute.setEnabled(view.can_compute)
        self.target_label.setText(view.target_html)
        self.method_note.setText(view.method_note)
        self.method_note.setVisible(bool(view.method_note))
        self.shapley.apply(view.shapley)
        if list(view.layer_names) != self._layer_names.stringList():
            self._layer_names.setStringList(list(view.layer_names))
        if view.layer_text != self._layer_shown or not self.layer.hasFocus():
            self._layer_shown = view.layer_text
            if self.layer.text() != view.layer_text:
                self.layer.setText(view.layer_text)
                self.layer.setCursorPosition(0)  # a long path's start says most
            self.layer.setToolTip(view.layer_text)
        fill_baselines(self.baseline, view.baselines)
        if view.segment_labels:  # a multi-label model's segments are label sets
            relabel(self.segments, view.segment_labels)
        if view.aggregation_labels:  # and its masked sum is over each class's own mask
            relabel(self.aggregation, view.aggregation_labels)
        self.segments.setToolTip(view.segments_tip)

    def _show_options(self, method: str) -> None:
        """The method's options are enabled (the registry says which it reads); the
        options only some methods have are shown only for them."""
        uses = METHOD_REGISTRY[method].uses
        rows: dict[str, tuple[QWidget, ...]] = {
            "layer": (self.layer_label, self.layer, self.choose_layer, self.reset_layer),
            "upsample": (self.upsample_label, self.upsample),
            "aggregation": (self.aggregation,), "segments": (self.segments_label, self.segments),
            "baseline": (self.baseline_label, self.baseline)}
        for name, widgets in rows.items():
            for widget in widgets:
                widget.setEnabled(name in uses)
        for name, row in self._option_rows.items():
            for widget in row:
                widget.setVisible(name in uses)

    def _show_signs(self, view: str) -> None:
        # Captum cannot mask or alpha-scale with both signs: 'all' is not offered there
        # (the view state turns it into 'positive').
        uses_map = view in COLORMAP_VIEWS
        self.colormap.setEnabled(uses_map)
        self.colormap_label.setEnabled(uses_map)
        model = self.sign.model()
        if isinstance(model, QStandardItemModel):
            item = model.item(self.sign.findData("all"))
            if item is not None:
                item.setEnabled(view not in SIGNED_ONLY_VIEWS)
