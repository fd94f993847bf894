"""The Layers panel: which layers the canvas shows, and how strongly.

One row per layer (the image, the segmentation, the explanation, the ablation): a
visibility check box and an opacity slider. The layer chosen in the canvas bar is drawn
on top and always shown; the other checked ones are drawn under it. A view only: it
shows the presenter's ``layer_visible`` and ``opacities`` and reports what the user
changes.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QGridLayout, QLabel, QSlider, QWidget

from .document.choices import IMAGE, LAYER_LABELS


class LayersPanel(QWidget):
    """Visibility and opacity of every canvas layer."""

    visibility_changed = Signal(str, bool)
    opacity_changed = Signal(str, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("layersPanel")
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 6, 8, 8)
        self._visible: dict[str, QCheckBox] = {}
        self._opacity: dict[str, QSlider] = {}
        for row, (layer, label) in enumerate(LAYER_LABELS.items()):
            check = QCheckBox(label, self)
            check.setObjectName(f"layerVisible_{layer}")
            check.setToolTip("Shown under the layer chosen above the image" if layer != IMAGE
                             else "The photo itself, under every layer")
            check.toggled.connect(lambda on, layer=layer: self.visibility_changed.emit(layer,
                                                                                      on))
            slider = QSlider(Qt.Orientation.Horizontal, self)
            slider.setObjectName(f"layerOpacity_{layer}")
            slider.setRange(0, 100)
            slider.setToolTip(f"Opacity of {label.lower()}")
            slider.valueChanged.connect(
                lambda value, layer=layer: self.opacity_changed.emit(layer, value / 100.0))
            grid.addWidget(check, row, 0)
            grid.addWidget(slider, row, 1)
            self._visible[layer], self._opacity[layer] = check, slider
        grid.addWidget(QLabel("The layer chosen above the image is drawn on top.", self),
                       len(LAYER_LABELS), 0, 1, 2)
        grid.setRowStretch(len(LAYER_LABELS) + 1, 1)

    def show_layers(self, visible: dict[str, bool], opacities: dict[str, float],
                    front: str, labels: dict[str, str]) -> None:
        for layer, check in self._visible.items():
            check.blockSignals(True)
            check.setChecked(visible.get(layer, False) or layer == front)
            check.setEnabled(layer != front)  # the chosen layer is always shown
            check.setText(labels.get(layer, LAYER_LABELS[layer]))
            check.blockSignals(False)
            slider = self._opacity[layer]
            slider.blockSignals(True)
            slider.setValue(round(opacities.get(layer, 1.0) * 100))
            slider.blockSignals(False)
            slider.setEnabled(layer != IMAGE)

    def visibility_box(self, layer: str) -> QCheckBox:
        return self._visible[layer]

    def opacity_slider(self, layer: str) -> QSlider:
        return self._opacity[layer]
