"""The model panel: architecture, weights, device, working size and fast mode."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine.cards import is_card_path, read_card
from ..engine.errors import UserError
from .binding import bind_spin, on_fields, select_value
from .document import catalog

if TYPE_CHECKING:
    from .document.states import ModelState
    from .document.window_views import ModelView

BROWSE = "__browse__"
UNTRAINED_TEXT = "UNTRAINED: random weights, for demos only"
BADGE_STYLE = ("QLabel { background: #f4b400; color: #202020; border-radius: 4px; "
               "padding: 3px 8px; font-weight: 600; }")
SIZE_DEBOUNCE_MS = 450
FAST_TEXT = "Fast mode (bf16)"
FAST_TIP = ("bf16 autocast: about 3x faster on a recent NVIDIA GPU (slower on most CPUs). "
            "The numbers are close to Captum's, not equal: on the benchmark image class scores "
            "moved by under 1 %, Grad-CAM maps by up to 19 % of their largest value. "
            "Off (fp32) is exact.")
FAST_BADGE_TEXT = "FAST MODE: bf16, approximate numbers"


def untrained_badge(parent=None, text: str = UNTRAINED_TEXT) -> QLabel:
    """The amber label that marks untrained weights wherever predictions are shown."""
    label = QLabel(text, parent)
    label.setObjectName("untrainedBadge")
    label.setStyleSheet(BADGE_STYLE)
    label.setWordWrap(True)
    label.setToolTip("These weights are seeded random numbers, not a trained model: the "
                     "segmentation and its explanations only demonstrate the tool.")
    return label


def card_name(path: str) -> str:
    """A model card's name for a list (its file name if it cannot be read)."""
    try:
        return read_card(path).name
    except UserError:
        return Path(path).stem


def card_summary(path: str, weights: str) -> str:
    """What the model panel says about a chosen model card (reading it runs no code)."""
    try:
        card = read_card(path)
    except UserError as exc:
        return f"<b>Model card</b> {html.escape(Path(path).name)}: {html.escape(str(exc))}"
    text = (f"<b>Model card</b> {html.escape(card.path.name)}: {html.escape(card.source)}"
            + (f" {html.escape(card.architecture)}" if card.architecture else "")
            + (f", encoder {html.escape(card.encoder)}" if card.encoder else ""))
    if card.classes:
        n = len(card.classes)
        text += f", {n} class name{'s' if n != 1 else ''}"
    if weights == "default":
        text += f"<br>Weights: {html.escape(Path(str(card.describe_weights())).name)}"
    if card.runs_code and card.factory is not None:
        text += (f"<br><b>Runs your Python code</b>: {html.escape(card.factory[0].name)}:"
                 f"{html.escape(card.factory[1])}")
    return text


def _human_size(n: int | None) -> str:
    if not n:
        return ""
    return f"{n / 1024 / 1024:.0f} MB"


class ModelPanel(QWidget):
    """Architecture, weights, device, working size and fast mode, each bound to one field
    of the model state (:meth:`bind`); the working note from the presenter (:meth:`apply`)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._model: ModelState | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 6, 8, 8)
        outer.setSpacing(6)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        outer.addLayout(form)
        self._form = form

        self.architecture = QComboBox(self)
        self.architecture.setObjectName("architectureCombo")
        self.architecture.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.architecture.setMinimumContentsLength(12)
        self._fill_architectures()
        form.addRow("Model", self.architecture)

        self.weights = QComboBox(self)
        self.weights.setObjectName("weightsCombo")
        self.weights.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.weights.setMinimumContentsLength(12)
        self.weights.addItem("Default (COCO, VOC labels)", "default")
        self.weights.addItem("Untrained (demo)", "untrained")
        self.weights.insertSeparator(2)
        self.weights.addItem("Load weights file...", BROWSE)
        form.addRow("Weights", self.weights)

        self.device = QComboBox(self)
        self.device.setObjectName("deviceCombo")
        self._devices_known = False
        form.addRow("Device", self.device)

        self.size_spin = QSpinBox(self)
        self.size_spin.setObjectName("sizeSpin")
        self.size_spin.setRange(32, 4096)
        self.size_spin.setSingleStep(32)
        self.size_spin.setSuffix(" px")
        self.size_spin.setAccelerated(True)
        self.size_spin.setToolTip("The image's shorter side is resized to this before the "
                                  "model sees it (the seed uses 640). Smaller is faster.")
        form.addRow("Working size", self.size_spin)
        self.working_note = QLabel(self)
        self.working_note.setObjectName("workingNote")
        self.working_note.setWordWrap(True)
        self.working_note.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        form.addRow("", self.working_note)

        self.fast = QCheckBox(FAST_TEXT, self)
        self.fast.setObjectName("fastCheck")
        self.fast.setToolTip(FAST_TIP)
        form.addRow("", self.fast)

        self.weights_info = QLabel(self)
        self.weights_info.setObjectName("weightsInfo")
        self.weights_info.setWordWrap(True)
        self.weights_info.setSizePolicy(QSizePolicy.Policy.Preferred,
                                        QSizePolicy.Policy.Minimum)
        self.weights_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.weights_info)
        self.badge = untrained_badge(self)
        outer.addWidget(self.badge)
        self.fast_badge = untrained_badge(self, FAST_BADGE_TEXT)
        self.fast_badge.setObjectName("fastBadge")
        self.fast_badge.setToolTip(FAST_TIP)
        outer.addWidget(self.fast_badge)
        # Only as tall as its contents: the explanation panel below gets the space.
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

    def show_device_choices(self, on: bool) -> None:
        """Show the device and fast-mode rows (the comparison's model B uses A's)."""
        self._form.setRowVisible(self.device, on)
        self._form.setRowVisible(self.fast, on)

    # -- binding ---------------------------------------------------------------------------
    def bind(self, model: ModelState, browse: Callable[[], None]) -> None:
        """Each widget edits one field of ``model`` and shows it; 'Load weights file...'
        calls ``browse`` (the file dialog sets the weights)."""
        self._model = model
        self._fill_devices()
        self.architecture.currentIndexChanged.connect(
            lambda _i: setattr(model, "architecture", str(self.architecture.currentData())))

        def weights_chosen(index: int) -> None:
            if self.weights.itemData(index) == BROWSE:
                self._show_weights()  # the weights in use, until a file is chosen
                browse()

        self.weights.activated.connect(weights_chosen)
        self.weights.currentIndexChanged.connect(
            lambda i: setattr(model, "weights", str(self.weights.itemData(i)))
            if self.weights.itemData(i) not in (BROWSE, None) else None)
        def device_chosen(_index: int) -> None:
            if self._devices_known:
                model.device = str(self.device.currentData())

        self.device.currentIndexChanged.connect(device_chosen)
        self._size = bind_spin(self.size_spin, model, "size", debounce_ms=SIZE_DEBOUNCE_MS)
        self.fast.toggled.connect(
            lambda on: setattr(model, "precision", "bf16" if on else "fp32"))
        on_fields(model, "architecture", self._show_architecture)
        on_fields(model, "weights", self._show_weights)
        on_fields(model, "device", lambda: select_value(self.device, model.device))
        on_fields(model, "precision", self._show_precision)
        on_fields(model, ("architecture", "weights", "precision"), self._update_info)

    def apply(self, view: ModelView) -> None:
        """The size the model really works at; the engine's devices once it is loaded."""
        self.working_note.setText(view.working_note)
        self.working_note.setVisible(bool(view.working_note))
        if view.engine_ready and not self._devices_known:
            self.engine_loaded()

    def refresh_architectures(self) -> None:
        """Pick up architectures registered after the panel was built."""
        with QSignalBlocker(self.architecture):
            self._fill_architectures()
        if self._model is not None:
            self._show_architecture()

    def engine_loaded(self) -> None:
        """Torch is imported: show the real devices and architectures, weights info."""
        with QSignalBlocker(self.architecture):
            self._fill_architectures()
            known = catalog.architectures()
            for i in reversed(range(self.architecture.count())):
                data = self.architecture.itemData(i)
                if data not in known and not is_card_path(str(data)):
                    self.architecture.removeItem(i)
        self._fill_devices()
        if self._model is not None:
            self._show_architecture()
            self._update_info()

    # -- showing the state -------------------------------------------------------------------
    def _fill_devices(self) -> None:
        """Until torch is loaded the list shows only 'auto' (the choice is kept)."""
        self._devices_known = catalog.engine_ready()
        with QSignalBlocker(self.device):
            self.device.clear()
            for name in catalog.devices():
                self.device.addItem(name, name)
        self.device.setEnabled(self._devices_known)
        self.device.setToolTip("" if self._devices_known
                               else "Loading PyTorch: the devices appear in a moment.")
        if self._model is not None and self._devices_known:
            select_value(self.device, self._model.device)

    def _fill_architectures(self) -> None:
        known = {self.architecture.itemData(i) for i in range(self.architecture.count())}
        for name, arch in catalog.architectures().items():
            if name not in known:
                self.architecture.addItem(name, name)
                self.architecture.setItemData(self.architecture.count() - 1,
                                              arch.description or name,
                                              Qt.ItemDataRole.ToolTipRole)

    def _show_architecture(self) -> None:
        assert self._model is not None
        value = self._model.architecture
        index = self.architecture.findData(value)
        with QSignalBlocker(self.architecture):
            if index < 0 and is_card_path(value):
                index = self.architecture.count()
                self.architecture.addItem(f"{card_name(value)} (card)", value)
                self.architecture.setItemData(index, f"Model card {value}",
                                              Qt.ItemDataRole.ToolTipRole)
            if index < 0:  # perhaps registered by code that has not run yet
                index = self.architecture.count()
                self.architecture.addItem(value, value)
            self.architecture.setCurrentIndex(index)
        # 'Default' means the card's own weights when a model card is chosen
        self.weights.setItemText(0, "From the card" if is_card_path(value)
                                 else "Default (COCO, VOC labels)")

    def _show_weights(self) -> None:
        assert self._model is not None
        weights = self._model.weights
        if self.weights.findData(weights) < 0:
            with QSignalBlocker(self.weights):
                self.weights.insertItem(2, Path(weights).name, weights)
                self.weights.setItemData(2, weights, Qt.ItemDataRole.ToolTipRole)
        select_value(self.weights, weights)

    def _show_precision(self) -> None:
        assert self._model is not None
        with QSignalBlocker(self.fast):
            self.fast.setChecked(self._model.precision == "bf16")

    def _update_info(self) -> None:
        assert self._model is not None
        choice = self._model.choice
        untrained = choice.weights == "untrained"
        self.badge.setVisible(untrained)
        self.fast_badge.setVisible(choice.precision == "bf16")
        if is_card_path(choice.architecture):
            self.weights_info.setText(card_summary(choice.architecture, choice.weights))
            return
        arch = catalog.architectures().get(choice.architecture)
        text = arch.description if arch and arch.description else ""
        if choice.weights == "default" and catalog.engine_ready():
            from ..engine.models import weights_table

            row = next((r for r in weights_table() if r.model == choice.architecture), None)
            if row is None or row.filename is None:
                text += "<br>No default weights: load a weights file or use untrained weights."
            elif row.cached:
                text += f"<br>Weights cached ({_human_size(row.size_bytes)})."
            else:
                size = _human_size(row.size_bytes)
                text += (f"<br>Weights not downloaded yet{f' ({size})' if size else ''}: "
                         "they download when first needed.")
        elif not untrained:
            text += f"<br>Weights file: {Path(choice.weights).name}"
        self.weights_info.setText(text.strip().removeprefix("<br>"))
