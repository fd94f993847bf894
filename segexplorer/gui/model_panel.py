"""The model panel: architecture, weights, device and working size."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
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
from .document import catalog
from .document.choices import ModelChoice

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
    """Emits ``changed`` with a :class:`ModelChoice` whenever the user changes one."""

    changed = Signal(object)
    browse_weights_requested = Signal()

    def __init__(self, choice: ModelChoice, parent=None) -> None:
        super().__init__(parent)
        self._updating = False
        self._last = choice
        outer = QVBoxLayout(self)
        outer.setContentsMargins(8, 6, 8, 8)
        outer.setSpacing(6)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        outer.addLayout(form)

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
        self._wanted_device = choice.device
        self._fill_devices()
        form.addRow("Device", self.device)

        self.size_spin = QSpinBox(self)
        self.size_spin.setObjectName("sizeSpin")
        self.size_spin.setRange(32, 4096)
        self.size_spin.setSingleStep(32)
        self.size_spin.setSuffix(" px")
        self.size_spin.setAccelerated(True)
        self.size_spin.setToolTip("The image's shorter side is resized to this before the model "
                             "sees it (the seed uses 640). Smaller is faster.")
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

        self._size_timer = QTimer(self)
        self._size_timer.setSingleShot(True)
        self._size_timer.setInterval(SIZE_DEBOUNCE_MS)
        self._size_timer.timeout.connect(self._emit)

        self.set_choice(choice)
        self.architecture.currentIndexChanged.connect(self._on_architecture)
        self.weights.activated.connect(self._on_weights_activated)
        self.weights.currentIndexChanged.connect(self._on_weights_changed)
        self.device.currentIndexChanged.connect(self._on_device)
        self.size_spin.valueChanged.connect(lambda _v: self._size_timer.start())
        self.size_spin.editingFinished.connect(self._flush_size)
        self.fast.toggled.connect(lambda _on: self._emit())

    # -- public ---------------------------------------------------------------------------
    def choice(self) -> ModelChoice:
        return ModelChoice(
            architecture=str(self.architecture.currentData() or self._last.architecture),
            weights=str(self.weights.currentData() or "default"),
            device=self._device_choice(),
            size=int(self.size_spin.value()),
            precision="bf16" if self.fast.isChecked() else "fp32",
        )

    def set_choice(self, choice: ModelChoice) -> None:
        self._updating = True
        try:
            self._fill_architectures()
            index = self.architecture.findData(choice.architecture)
            if index < 0 and is_card_path(choice.architecture):
                index = self._add_card_item(choice.architecture,
                                            card_name(choice.architecture))
            if index < 0 and not catalog.engine_ready():
                # Perhaps registered by code that has not run yet: checked once loaded.
                self.architecture.addItem(choice.architecture, choice.architecture)
                index = self.architecture.count() - 1
            self.architecture.setCurrentIndex(max(0, index))
            self._select_weights(choice.weights)
            self._wanted_device = choice.device
            self._select_device(choice.device)
            self.size_spin.setValue(int(choice.size))
            self.fast.setChecked(choice.precision == "bf16")
        finally:
            self._updating = False
        self._last = self.choice()
        self._update_info()

    def add_card(self, path: str, name: str) -> None:
        """List a model card (its path is the choice's architecture) and choose it."""
        self._add_card_item(path, name)
        self.architecture.setCurrentIndex(self.architecture.findData(path))

    def _add_card_item(self, path: str, name: str) -> int:
        index = self.architecture.findData(path)
        if index < 0:
            self.architecture.addItem(f"{name} (card)", path)
            index = self.architecture.count() - 1
            self.architecture.setItemData(index, f"Model card {path}",
                                          Qt.ItemDataRole.ToolTipRole)
        return index

    def set_weights(self, weights: str) -> None:
        """Choose 'default', 'untrained' or a weights file (added to the list)."""
        self._updating = True
        try:
            self._select_weights(weights)
        finally:
            self._updating = False
        self._emit()

    def set_working_note(self, text: str) -> None:
        """The size the model really works at (the window's document says)."""
        self.working_note.setText(text)
        self.working_note.setVisible(bool(text))

    def set_size(self, size: int) -> None:
        self.size_spin.setValue(int(size))
        self._flush_size()

    def engine_loaded(self) -> None:
        """Torch is imported: show the real devices and architectures, weights info."""
        self._updating = True
        try:
            self._fill_devices()
            self._fill_architectures()
            known = catalog.architectures()
            for i in reversed(range(self.architecture.count())):
                data = self.architecture.itemData(i)
                if data not in known and not is_card_path(str(data)):
                    self.architecture.removeItem(i)
        finally:
            self._updating = False
        self._last = self.choice()
        self._update_info()

    def refresh_architectures(self) -> None:
        """Pick up architectures registered after the panel was built."""
        self._updating = True
        try:
            current = self.architecture.currentData()
            self._fill_architectures()
            self.architecture.setCurrentIndex(max(0, self.architecture.findData(current)))
        finally:
            self._updating = False

    # -- internals ---------------------------------------------------------------------------
    def _fill_devices(self) -> None:
        """Until torch is loaded the list shows only 'auto' (the choice is kept)."""
        self._devices_known = catalog.engine_ready()
        self.device.blockSignals(True)
        try:
            self.device.clear()
            for name in catalog.devices():
                self.device.addItem(name, name)
            self.device.setEnabled(self._devices_known)
            self.device.setToolTip("" if self._devices_known
                                   else "Loading PyTorch: the devices appear in a moment.")
        finally:
            self.device.blockSignals(False)
        self._select_device(self._wanted_device)

    def _select_device(self, device: str) -> None:
        if not self._devices_known:
            return  # the combo shows 'auto'; the wanted device is kept
        index = self.device.findData(device)
        if index < 0 and device != catalog.AUTO_DEVICE:
            index = self.device.findData("cpu")
        self.device.setCurrentIndex(max(0, index))  # 'auto': the best device, listed first

    def _device_choice(self) -> str:
        if not self._devices_known:
            return self._wanted_device
        return str(self.device.currentData() or "cpu")

    def _fill_architectures(self) -> None:
        known = {self.architecture.itemData(i) for i in range(self.architecture.count())}
        for name, arch in catalog.architectures().items():
            if name not in known:
                self.architecture.addItem(name, name)
                self.architecture.setItemData(self.architecture.count() - 1,
                                              arch.description or name,
                                              Qt.ItemDataRole.ToolTipRole)

    def _select_weights(self, weights: str) -> None:
        index = self.weights.findData(weights)
        if index < 0:
            path = str(weights)
            self.weights.insertItem(2, Path(path).name, path)
            self.weights.setItemData(2, path, Qt.ItemDataRole.ToolTipRole)
            index = 2
        self.weights.setCurrentIndex(index)

    def _on_device(self) -> None:
        if self._devices_known and not self._updating:
            self._wanted_device = self._device_choice()
        self._emit()

    def _on_architecture(self) -> None:
        self._update_weights_label()
        self._emit()

    def _update_weights_label(self) -> None:
        """'Default' means the card's own weights when a model card is chosen."""
        card = is_card_path(str(self.architecture.currentData() or ""))
        self.weights.setItemText(0, "From the card" if card else "Default (COCO, VOC labels)")

    def _on_weights_activated(self, index: int) -> None:
        if self.weights.itemData(index) == BROWSE:
            self._updating = True
            try:
                self._select_weights(self._last.weights)
            finally:
                self._updating = False
            self.browse_weights_requested.emit()

    def _on_weights_changed(self, index: int) -> None:
        if self.weights.itemData(index) == BROWSE:
            return
        self._emit()

    def _flush_size(self) -> None:
        if self._size_timer.isActive():
            self._size_timer.stop()
            self._emit()

    def _emit(self) -> None:
        if self._updating:
            return
        choice = self.choice()
        self._update_info()
        if choice != self._last:
            self._last = choice
            self.changed.emit(choice)

    def _update_info(self) -> None:
        choice = self.choice()
        untrained = choice.weights == "untrained"
        self.badge.setVisible(untrained)
        self.fast_badge.setVisible(choice.precision == "bf16")
        self._update_weights_label()
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
