"""The Layers panel: which layers the canvas shows, and how strongly.

One row per layer (the image, the segmentation, the explanation, the ablation): a
visibility check box and an opacity slider. The layer chosen in the canvas bar is drawn
on top and always shown; the other checked ones are drawn under it. Each widget edits
the layers state (:meth:`LayersPanel.bind`); the presenter's ``LayersView`` says what is
shown (:meth:`LayersPanel.apply`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import QCheckBox, QGridLayout, QLabel, QSlider, QWidget

from .document.choices import IMAGE, LAYER_LABELS

if TYPE_CHECKING:
    from .document.states import LayersState
    from .document.window_views import LayersView


class LayersPanel(QWidget):
    """Visibility and opacity of every canvas layer."""

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
            slider = QSlider(Qt.Orientation.Horizontal, self)
            slider.setObjectName(f"layerOpacity_{layer}")
            slider.setRange(0, 100)
            slider.setToolTip(f"Opacity of {label.lower()}")
            grid.addWidget(check, row, 0)
            grid.addWidget(slider, row, 1)
            self._visible[layer], self._opacity[layer] = check, slider
        note = QLabel("The layer chosen above the image is drawn on top.", self)
        note.setWordWrap(True)  # the dock's default width holds it on two lines
        grid.addWidget(note, len(LAYER_LABELS), 0, 1, 2)
        grid.setRowStretch(len(LAYER_LABELS) + 1, 1)

    def bind(self, layers: LayersState) -> None:
        """Each check box and slider edits one layer's visibility or opacity."""
        for layer, check in self._visible.items():
            check.toggled.connect(lambda on, layer=layer: layers.set_visible(layer, on))
            self._opacity[layer].valueChanged.connect(
                lambda value, layer=layer: layers.set_opacity(value / 100.0, layer))

    def apply(self, view: LayersView) -> None:
        for layer, check in self._visible.items():
            with QSignalBlocker(check):
                check.setChecked(view.visible.get(layer, False) or layer == view.chosen)
            check.setEnabled(layer != view.chosen)  # the chosen layer is always shown
            check.setText(view.labels.get(layer, LAYER_LABELS[layer]))
            slider = self._opacity[layer]
            with QSignalBlocker(slider):
                slider.setValue(round(view.opacities.get(layer, 1.0) * 100))
            slider.setEnabled(layer != IMAGE)

    def visibility_box(self, layer: str) -> QCheckBox:
        return self._visible[layer]

    def opacity_slider(self, layer: str) -> QSlider:
        return self._opacity[layer]
