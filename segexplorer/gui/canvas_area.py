"""The window's central area: the untrained banner, the model's outputs hint, the layer
bar, the canvas (or the side-by-side panels) and the footer (colour bar, class legend or a
message).

The bar's buttons and slider edit the layers state, the legend's entries show or hide a
multi-label model's classes, the hint's Dismiss button dismisses it for the model
(:meth:`CanvasArea.bind`);
:meth:`CanvasArea.apply` shows the presenter's
:class:`~segexplorer.gui.document.canvas_view.CanvasAreaView`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSlider,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .canvas import ImageCanvas
from .colorbar import ClassLegend, ColorBar
from .document.choices import LAYER_LABELS
from .model_panel import untrained_badge
from .multiview import MultiView

if TYPE_CHECKING:
    from .document.canvas_view import CanvasAreaView
    from .document.states import LayersState, ModelState

HINT_STYLE = ("QFrame#outputsHint { background: palette(tool-tip-base); "
              "border: 1px solid palette(mid); border-radius: 3px; }")

PLACEHOLDER = ("Open an image (Ctrl+O), drop one here, paste one (Ctrl+V),\n"
               "or try Help > Open sample image.")


class CanvasArea(QWidget):
    """Banner, layer bar, canvas or panels, footer."""

    def __init__(self, make_ablate_button: Callable[[QWidget], QToolButton],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        column = QVBoxLayout(self)
        column.setContentsMargins(6, 6, 6, 4)
        column.setSpacing(4)
        self.banner = untrained_badge(
            self, "UNTRAINED WEIGHTS: this model is random (demo mode); its segmentation "
                  "and explanations mean nothing.")
        self.banner.setObjectName("untrainedBanner")
        self.banner.setVisible(False)
        column.addWidget(self.banner)
        # the model's outputs look otherwise than its card says: one line, until dismissed
        self.hint = QFrame(self)
        self.hint.setObjectName("outputsHint")
        self.hint.setStyleSheet(HINT_STYLE)
        hint_row = QHBoxLayout(self.hint)
        hint_row.setContentsMargins(6, 2, 2, 2)
        self.hint_label = QLabel(self.hint)
        self.hint_label.setObjectName("outputsHintText")
        self.hint_label.setWordWrap(True)
        self.hint_label.setForegroundRole(QPalette.ColorRole.ToolTipText)
        self.hint_dismiss = QToolButton(self.hint)
        self.hint_dismiss.setObjectName("outputsHintDismiss")
        self.hint_dismiss.setText("Dismiss")
        self.hint_dismiss.setAutoRaise(True)
        self.hint_dismiss.setToolTip("Do not show this note again for this model "
                                     "(the result is the same either way)")
        hint_row.addWidget(self.hint_label, 1)
        hint_row.addWidget(self.hint_dismiss, 0, Qt.AlignmentFlag.AlignTop)
        self.hint.setVisible(False)
        column.addWidget(self.hint)

        bar = QHBoxLayout()
        bar.setSpacing(4)
        self.layer_buttons = QButtonGroup(self)
        self.layer_buttons.setExclusive(True)
        self.layer_button: dict[str, QToolButton] = {}
        for i, (layer, label) in enumerate(LAYER_LABELS.items()):
            button = QToolButton(self)
            button.setText(label)
            button.setCheckable(True)
            button.setAutoRaise(False)
            button.setObjectName(f"layerButton_{layer}")
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setToolTip(f"Show {label.lower()} (Alt+{i + 1})")
            self.layer_buttons.addButton(button, i)
            self.layer_button[layer] = button
            bar.addWidget(button)
        bar.addSpacing(8)
        self.ablate_button = make_ablate_button(self)
        bar.addWidget(self.ablate_button)
        bar.addSpacing(8)
        self.opacity_label = QLabel("Opacity", self)
        bar.addWidget(self.opacity_label)
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setObjectName("opacitySlider")
        self.opacity.setRange(0, 100)
        self.opacity.setMinimumWidth(36)  # narrow windows keep the whole bar
        self.opacity.setMaximumWidth(120)
        self.opacity.setToolTip("Opacity of the shown layer over the image")
        bar.addWidget(self.opacity, 1)
        bar.addStretch(1)
        column.addLayout(bar)
        self.canvas = ImageCanvas(self, PLACEHOLDER)
        # the zoom controls sit beside the footer: the bar above stays narrow enough for
        # a 1024 px screen
        zoom_row = QHBoxLayout()
        zoom_row.setSpacing(2)
        self.zoom_label = QLabel("", self)
        self.zoom_label.setMinimumWidth(44)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        zoom_row.addWidget(self.zoom_label)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        for text, tip, slot in (("-", "Zoom out (Ctrl+-)", self.canvas.zoom_out),
                                ("+", "Zoom in (Ctrl++ or Ctrl+=)", self.canvas.zoom_in),
                                ("Fit", "Fit to window (Ctrl+0)", self.canvas.fit_to_window),
                                ("1:1", "Actual pixels (Ctrl+1)", self.canvas.actual_size)):
            button = QToolButton(self)
            button.setText(text)
            button.setToolTip(tip)
            button.setMinimumWidth(28)
            button.clicked.connect(lambda *_args, slot=slot: slot())
            zoom_row.addWidget(button)

        self.multi_view = MultiView(self)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.canvas)
        self.stack.addWidget(self.multi_view)
        column.addWidget(self.stack, 1)
        # The footer keeps its height whatever it shows, so the canvas never jumps.
        self.footer = QStackedWidget(self)
        self.colorbar = ColorBar(self.footer)
        self.colorbar.setObjectName("colorBar")
        self.legend = ClassLegend(self.footer)
        self.legend.setObjectName("classLegend")
        self.footer_message = QLabel(self.footer)
        self.footer_message.setObjectName("footerMessage")
        self.footer_message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.footer_message.setWordWrap(True)
        self.footer_message.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        for widget in (self.colorbar, self.legend, self.footer_message):
            self.footer.addWidget(widget)
        self.footer.setFixedHeight(self.colorbar.sizeHint().height())
        bottom = QHBoxLayout()
        bottom.addWidget(self.footer, 1)
        bottom.addLayout(zoom_row)
        column.addLayout(bottom)
        self.compare_page: QWidget | None = None  # the comparison's split view
        self._zoom_row = zoom_row

    def set_compare_page(self, page: QWidget) -> None:
        """The split view shown instead of the canvas while comparing two models."""
        self.compare_page = page
        self.stack.addWidget(page)

    def bind(self, layers: LayersState, model: ModelState) -> None:
        """The layer buttons choose the layer on top; the slider sets its opacity; a
        legend entry shows or hides its class; Dismiss hides the model's outputs hint."""
        self.layer_buttons.idClicked.connect(
            lambda i: setattr(layers, "chosen", list(LAYER_LABELS)[i]))
        self.opacity.valueChanged.connect(lambda value: layers.set_opacity(value / 100.0))
        self.legend.class_toggled.connect(layers.toggle_class)
        self.hint_dismiss.clicked.connect(lambda: model.dismiss_hint())

    def apply(self, view: CanvasAreaView) -> None:
        """Show the layer bar, the canvas, the panels and the footer of ``view``."""
        self.banner.setVisible(view.untrained)
        self.hint_label.setText(view.hint)
        self.hint.setVisible(bool(view.hint))
        for layer, button in self.layer_button.items():
            button.setText(view.layer_labels[layer])
            button.setEnabled(view.layer_enabled[layer])
            button.setChecked(layer == view.chosen)
        with QSignalBlocker(self.opacity):
            self.opacity.setValue(round(view.canvas.opacity * 100))
        self.opacity.setEnabled(view.opacity_enabled)
        self.opacity_label.setEnabled(view.opacity_enabled)
        canvas = view.canvas
        self.canvas.show_layers(canvas.base, canvas.overlay, canvas.opacity, canvas.outline,
                                canvas.outline_key, canvas.working, canvas.base_visible,
                                canvas.under)
        footer = view.footer
        self.colorbar.set_attribution(footer.normalized, footer.caption, footer.colormap)
        if footer.kind == "colorbar":
            self.footer.setCurrentWidget(self.colorbar)
        elif footer.kind == "legend":
            self.legend.set_entries(list(footer.legend))
            self.footer.setCurrentWidget(self.legend)
        else:
            self.footer_message.setText(footer.caption)
            self.footer.setCurrentWidget(self.footer_message)
        comparing = view.comparing and self.compare_page is not None
        self.footer.setVisible(not comparing)  # the split view has its own colour bars
        for i in range(self._zoom_row.count()):
            item = self._zoom_row.itemAt(i)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.setVisible(not comparing)
        if comparing:
            assert self.compare_page is not None
            self.stack.setCurrentWidget(self.compare_page)
            return
        self.stack.setCurrentWidget(self.multi_view if view.side_by_side else self.canvas)
        if view.side_by_side:
            if view.panels:
                self.multi_view.set_panels(list(view.panels))
            else:
                self.multi_view.set_message(view.panels_message)
