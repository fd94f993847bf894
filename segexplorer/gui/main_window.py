"""The main window: a Qt view over the analysis document.

Everything the window knows lives in its :class:`~.document.Document` (no Qt): the
user's choices, the results, the jobs, ablate mode. The window builds the widgets, sends
what the user does to the document, and on the document's ``view_changed`` applies the
:class:`~.document.presenter.WindowView` that the presenter computes. Dialogs, the
clipboard, drag and drop, settings and the status bar are the window's own.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QEventLoop, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QProgressBar,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from .ablate_mode import AblateController
from .canvas_area import CanvasArea
from .classes_panel import ClassesPanel
from .dataset_window import DatasetController
from .dialogs import Dialogs
from .document import Document, Exports, Presenter, WindowView, catalog
from .document.choices import ATTRIBUTION, LAYER_LABELS, default_model_choice
from .document.messages import Failure, Notice, OfflineOffer, Saved
from .document.sources import ImageSource
from .evaluate_panel import EvaluatePanel
from .explain_panel import ExplanationPanel
from .exports import ExportsController
from .imaging import encode_png
from .jobs import JobRunner
from .layer_picker import LayerPicker
from .layers_panel import LayersPanel
from .model_cards import ModelCardsMenu, safe_start_choice
from .model_panel import ModelPanel
from .settings import Preferences, make_settings
from .window_actions import build_actions, build_menus, shortcut_rows

if TYPE_CHECKING:
    import numpy as np

    from ..engine.results import Prediction
    from ..engine.session import Session
    from .document.choices import AnalysisChoice, ModelChoice, ViewChoice

IMAGE_FILTER = ("Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp *.ppm *.pgm);;"
                "All files (*)")
CLOSE_WAIT_S = 1.2  # then the process exits anyway (see app.run_app)


def scrolling(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: a dock shorter than its panel scrolls
    instead of making the window taller than the screen."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(widget)
    return area


class MainWindow(QMainWindow):
    """SegExplorer's main window."""

    #: the window has been painted for the first time
    first_painted = Signal()
    #: torch and the engine are imported (the startup job finished)
    engine_loaded = Signal()

    def __init__(self, settings: QSettings | None = None, *, interactive: bool = True,
                 num_threads: int | None = None) -> None:
        super().__init__()
        self.setObjectName("segexplorerMainWindow")
        self.interactive = interactive  # False: no message boxes (smoke test, scripting)
        self.prefs = Preferences(settings if settings is not None else make_settings())
        if not catalog.engine_ready() and catalog.engine_already_imported():
            # torch is imported already (tests, scripts): no wait
            catalog.load_engine(count_threads=num_threads is None)
        self._painted = False
        self._num_threads = num_threads
        if num_threads is None and catalog.engine_ready():
            import torch  # imported already (the engine is)

            num_threads = torch.get_num_threads()
        # Until torch is loaded, workers leave torch's thread count alone.
        self.runner = JobRunner(self, num_threads=num_threads)
        self.last_error: str | None = None
        self.unfinished_threads = False
        self.layer_picker: LayerPicker | None = None
        self._layers_of: object = None  # the model whose layers the layer field completes

        stored_layer = str(self.prefs.value("view/layer", ATTRIBUTION) or ATTRIBUTION)
        # a model card that runs code is never reopened unasked
        start_model, start_note = safe_start_choice(
            self.prefs.model_choice(default_model_choice()), default_model_choice())
        self.document = doc = Document(
            self.runner, start_model,
            self.prefs.analysis_choice(), self.prefs.view_choice(), stored_layer,
            self.prefs.opacities(), str(self.prefs.value("view/outline", "true")) == "true",
            count_threads=num_threads is None)
        self.presenter = Presenter()
        self.dialogs = Dialogs(self, interactive)
        self.model_panel = ModelPanel(doc.model_choice, self)
        self.explain_panel = ExplanationPanel(doc.analysis, doc.view, self)
        self.evaluate_panel = EvaluatePanel(self)
        self.classes_panel = ClassesPanel(self)
        self.layers_panel = LayersPanel(self)
        self.ablation = AblateController(doc, self,
                                         lambda: self.exporter.choose_export_ablation(),
                                         lambda: self.exporter.choose_export_history())
        self.area = CanvasArea(self.ablation.make_tool_button, self)
        self.setCentralWidget(self.area)
        area = self.area  # the widgets tests and tools use, by their names
        self.banner, self.canvas, self.multi_view = area.banner, area.canvas, area.multi_view
        self.stack, self.colorbar, self.legend = area.stack, area.colorbar, area.legend
        self.opacity, self.zoom_label = area.opacity, area.zoom_label
        self.ablate_button = area.ablate_button
        self.exporter = ExportsController(
            doc, Exports(doc, self.presenter), self, self.prefs, self.canvas, self.multi_view,
            self._status, lambda message: self._on_failed(Failure("figure", message)))
        self._build_docks()
        self.commands = build_actions(self, {
            "open": self.choose_image, "paste": self.paste_image,
            "open_session": lambda: self.exporter.choose_session(),
            "save_session": lambda: self.exporter.choose_session_file(),
            "export_view": self.exporter.choose_export_view, "copy": self.exporter.copy_view,
            "export_working": lambda: self.exporter.choose_export_view(working=True),
            "export_figure": self.exporter.choose_export_figure,
            "export_all": self.exporter.choose_export_all, "escape": doc.escape,
            "compute": doc.compute, "zoom_in": self.canvas.zoom_in,
            "zoom_out": self.canvas.zoom_out, "fit": self.canvas.fit_to_window,
            "actual": self.canvas.actual_size, "outline": doc.set_outline,
            "side_by_side": lambda on: doc.update_view(side_by_side=bool(on)),
            "sample": doc.open_sample_image, "about": self.show_about,
            "shortcuts": self.show_shortcuts,
            "layer": doc.set_canvas_layer})
        self.commands.outline.setChecked(doc.outline)
        self.recent_menu = build_menus(
            self, self.commands, [self.ablation.action, self.ablation.undo_action,
                                 self.ablation.redo_action, self.ablation.reset_action,
                                 self.ablation.export_action],
            [self.classes_dock, self.layers_dock, self.model_dock, self.explain_dock,
             self.ablation_dock, self.evaluate_dock])
        self._update_recent_menu()
        self.cards = ModelCardsMenu(self, self.model_panel, self.prefs,
                                    lambda message: self._on_failed(Failure("card", message)),
                                    lambda message: self._status(message, 6000),
                                    ask=self.dialogs.confirm)
        self.cards.attach(before=next((a for a in self.menuBar().actions()
                                       if a.text() == "&View"), None))
        self.datasets = DatasetController(self)  # File > Open Dataset..., Run Batch...
        self.datasets.attach(next(a.menu() for a in self.menuBar().actions()
                                  if a.text() == "&File"), self.commands.paste)
        self._build_status_bar()
        if start_note:
            self._status(start_note, 15000)
        self._connect()
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self._restore_geometry()
        self.explain_panel.set_default_layer(doc.default_layer)
        self.refresh_view()
        if doc.engine_ready:
            QTimer.singleShot(0, doc.preload_model)
        # else: the engine starts loading once the window has been painted

    # ======================================================================= start-up
    def paintEvent(self, event: Any) -> None:  # noqa: N802
        super().paintEvent(event)
        if not self._painted:
            self._painted = True
            QTimer.singleShot(0, self._on_first_paint)

    def _on_first_paint(self) -> None:
        self.first_painted.emit()
        self.load_engine()

    @property
    def engine_ready(self) -> bool:
        """Whether torch and the engine are imported (model jobs wait for it)."""
        return self.document.engine_ready

    def load_engine(self) -> None:
        """Import torch and the engine in the 'startup' job (once; never on this thread)."""
        self.document.load_engine()

    def _on_engine_loaded(self, info: catalog.EngineInfo) -> None:
        if self._num_threads is None:
            self.runner.set_num_threads(info.num_threads)
        self.model_panel.engine_loaded()
        self.explain_panel.set_default_layer(self.document.default_layer)
        self.engine_loaded.emit()

    # ======================================================================= building
    def _build_docks(self) -> None:
        def dock(title: str, widget: QWidget, name: str, area: Qt.DockWidgetArea,
                 scroll: bool = True) -> QDockWidget:
            d = QDockWidget(title, self)
            d.setObjectName(name)
            d.setWidget(scrolling(widget) if scroll else widget)
            d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                          | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                          | QDockWidget.DockWidgetFeature.DockWidgetClosable)
            self.addDockWidget(area, d)
            return d

        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.classes_panel.setMinimumWidth(170)
        self.classes_dock = dock("Classes", self.classes_panel, "classesDock", left)
        self.layers_dock = dock("Layers", self.layers_panel, "layersDock", left)
        self.tabifyDockWidget(self.classes_dock, self.layers_dock)
        self.classes_dock.raise_()
        self.model_dock = dock("Model", self.model_panel, "modelDock", right)
        self.explain_dock = dock("Explanation", self.explain_panel, "explainDock", right)
        self.splitDockWidget(self.model_dock, self.explain_dock, Qt.Orientation.Vertical)
        self.evaluate_dock = dock("Evaluate", self.evaluate_panel, "evaluateDock", right)
        self.ablation_dock = dock("Ablation", self.ablation.panel, "ablationDock", right,
                                  scroll=False)  # it scrolls itself
        self.tabifyDockWidget(self.explain_dock, self.ablation_dock)
        self.tabifyDockWidget(self.ablation_dock, self.evaluate_dock)
        self.explain_dock.raise_()
        # narrow enough together for a 1024 px screen; a narrower dock scrolls
        for d, width in ((self.classes_dock, 170), (self.model_dock, 270),
                         (self.explain_dock, 270), (self.ablation_dock, 270),
                         (self.evaluate_dock, 270)):
            d.widget().setMinimumWidth(width)
        self.resizeDocks([self.classes_dock], [230], Qt.Orientation.Horizontal)
        self.resizeDocks([self.model_dock], [360], Qt.Orientation.Horizontal)
        self.resizeDocks([self.model_dock, self.explain_dock], [200, 520],
                         Qt.Orientation.Vertical)

    def _build_status_bar(self) -> None:
        status = self.statusBar()
        status.setSizeGripEnabled(True)
        self.hover_label = QLabel("", self)
        self.hover_label.setObjectName("hoverLabel")
        self.hover_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        status.addWidget(self.hover_label, 1)
        self.job_label = QLabel("", self)
        self.job_label.setObjectName("jobLabel")
        self.progress = QProgressBar(self)
        self.progress.setObjectName("jobProgress")
        self.progress.setFixedWidth(160)
        self.progress.setMaximumHeight(16)
        self.progress.setTextVisible(False)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Cancel the running computation (Esc)")
        self.cancel_button.clicked.connect(self.cancel_jobs)
        self.status_badge = QLabel("UNTRAINED", self)
        self.status_badge.setObjectName("statusUntrained")
        self.status_badge.setStyleSheet(self.banner.styleSheet())
        self.device_label = QLabel("", self)
        self.device_label.setObjectName("deviceLabel")
        for widget in (self.job_label, self.progress, self.cancel_button, self.status_badge,
                       self.device_label):
            status.addPermanentWidget(widget)
        self._set_busy_widgets(False)

    def _connect(self) -> None:
        doc = self.document
        self.runner.progress.connect(self._on_progress)
        self.runner.activity_changed.connect(self._on_activity)
        self.runner.failed.connect(lambda ch, msg, det: self._on_failed(Failure(ch, msg, det)))
        doc.view_changed.connect(lambda _none: self.refresh_view())
        doc.choices_changed.connect(lambda _none: self._show_choices())
        doc.failed.connect(self._on_failed)
        doc.notice.connect(self._on_notice)
        doc.offline.connect(self._on_offline)
        doc.image_opened.connect(self._on_image_opened)
        doc.engine_loaded.connect(self._on_engine_loaded)
        doc.ablate_mode_changed.connect(self._on_ablate_mode)
        doc.saved.connect(self._on_saved)
        self.model_panel.changed.connect(self._on_model_choice)
        self.model_panel.browse_weights_requested.connect(self.choose_weights_file)
        self.explain_panel.analysis_changed.connect(doc.set_analysis)
        self.explain_panel.view_changed.connect(doc.set_view)
        self.explain_panel.compute_requested.connect(doc.compute)
        self.explain_panel.choose_layer_requested.connect(self.choose_layer)
        self.classes_panel.target_selected.connect(doc.set_target)
        self.evaluate_panel.bind(doc.evaluation, self.exporter.choose_evaluation_curves,
                                 self.exporter.choose_evaluation_numbers)
        self.layers_panel.visibility_changed.connect(doc.set_layer_visible)
        self.layers_panel.opacity_changed.connect(lambda layer, v: doc.set_opacity(v, layer))
        self.canvas.hovered.connect(self._on_hover)
        self.canvas.clicked.connect(self._on_canvas_clicked)
        self.canvas.stroke_finished.connect(
            lambda tool, points: doc.ablation.draw_region(
                tool, points, float(self.ablation.panel.brush_size.value())))
        self.ablation.panel.tool_chosen.connect(self._on_tool)
        self.area.layer_buttons.idClicked.connect(
            lambda i: doc.set_canvas_layer(list(LAYER_LABELS)[i]))
        self.area.opacity.valueChanged.connect(lambda value: doc.set_opacity(value / 100.0))
        self._hover_timer = QTimer(self)  # hover text is cheap but coalesce anyway
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(15)
        self._hover_timer.timeout.connect(self._update_hover)
        self._hover_at: tuple[int, int] = (-1, -1)
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):
            hints.colorSchemeChanged.connect(lambda *_: self.refresh_view())

    # ======================================================================= the document
    @property
    def model_choice(self) -> ModelChoice:
        return self.document.model_choice

    @property
    def analysis_choice(self) -> AnalysisChoice:
        return self.document.analysis

    @property
    def view_choice(self) -> ViewChoice:
        return self.document.view

    @property
    def prediction(self) -> Prediction | None:
        return self.document.prediction

    @property
    def session(self) -> Session | None:
        return self.document.session

    @property
    def target(self) -> int | None:
        return self.document.target

    @property
    def layer(self) -> str:
        return self.document.canvas_layer

    def set_target(self, cls: int | None) -> None:
        self.document.set_target(cls)

    def set_layer(self, layer: str) -> None:
        self.document.set_canvas_layer(layer)

    def has_result(self, method: str | None = None) -> bool:
        return self.document.has_result(method)

    def compute(self) -> None:
        self.document.compute()

    def cancel_jobs(self) -> None:
        self.document.cancel_all()

    def describe_pixel(self, x: int, y: int) -> str:
        """The status-bar text for image pixel (x, y)."""
        return self.presenter.describe_pixel(self.document, x, y)

    def set_model_choice(self, choice: ModelChoice) -> None:
        """Choose the model (the panel shows it)."""
        self.model_panel.set_choice(choice)
        self._on_model_choice(self.model_panel.choice())

    def _on_model_choice(self, choice: ModelChoice) -> None:
        self.document.set_model_choice(choice)
        self.explain_panel.set_default_layer(self.document.default_layer)

    def _show_choices(self) -> None:
        """The panels show the document's choices (whoever changed them)."""
        doc, panel = self.document, self.explain_panel
        panel.set_default_layer(doc.default_layer)
        if doc.model is not self._layers_of:
            self._layers_of = doc.model
            panel.set_layer_names([name for name, _kind in doc.layers.names()])
        if self.model_panel.choice() != doc.model_choice:
            self.model_panel.set_choice(doc.model_choice)
        if panel.analysis() != doc.analysis:
            panel.set_analysis(doc.analysis)
        if panel.view_choice() != doc.view:
            panel.set_view(doc.view)

    # ======================================================================= files
    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self.prefs.last_folder,
                                              IMAGE_FILTER)
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> None:
        """Open an image file (it replaces the current one once it has loaded)."""
        self.document.open_image(path)

    def open_image_bytes(self, data: bytes, label: str = "<clipboard>") -> None:
        self.document.open_image_bytes(data, label)

    def open_sample_image(self) -> None:
        self.document.open_sample_image()

    def paste_image(self) -> None:
        clipboard = QGuiApplication.clipboard()
        mime = clipboard.mimeData()
        if mime is not None and mime.hasImage():
            image = clipboard.image()
            if not image.isNull():
                self.open_image_bytes(encode_png(image), "<clipboard>")
                return
        if mime is not None and mime.hasUrls():
            files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
            if files:
                self.open_image(files[0])
                return
        text = mime.text().strip() if mime is not None and mime.hasText() else ""
        if text and Path(text).expanduser().is_file():
            self.open_image(text)
            return
        self.statusBar().showMessage("The clipboard holds no image.", 4000)

    def _on_image_opened(self, source: ImageSource) -> None:
        if source.path:
            self.prefs.last_folder = str(Path(source.path).parent)
            self.prefs.add_recent_file(source.path)
            self._update_recent_menu()
        self.canvas.set_base(None)  # a new image always starts fitted to the window
        self.hover_label.setText(self.presenter.describe_pixel(self.document, -1, -1))

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.prefs.recent_files()
        for i, path in enumerate(files):
            action = self.recent_menu.addAction(f"&{(i + 1) % 10} {Path(path).name}")
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(partial(self.open_image, path))
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear Recent Files", self._clear_recent)
        self.recent_menu.setEnabled(bool(files))

    def _clear_recent(self) -> None:
        self.prefs.clear_recent_files()
        self._update_recent_menu()

    def choose_weights_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load weights file", self.prefs.last_folder,
            "PyTorch state dicts (*.pth *.pt *.bin *.ckpt);;All files (*)")
        if path:
            self.model_panel.set_weights(path)

    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802
        mime = event.mimeData()
        if mime.hasImage() or any(u.isLocalFile() for u in mime.urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:  # noqa: N802
        mime = event.mimeData()
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
        if files:
            self.open_image(files[0])
            event.acceptProposedAction()
        elif mime.hasImage():
            image = mime.imageData()
            if image is not None and not image.isNull():
                self.open_image_bytes(encode_png(image), "<dropped image>")
                event.acceptProposedAction()

    # ======================================================================= exports
    def current_view_image(self, working: bool = False) -> np.ndarray | None:
        return self.exporter.current_view_image(working)

    def export_view(self, path: str | Path, working: bool = False) -> None:
        self.exporter.export_view(path, working)

    def copy_view(self) -> None:
        self.exporter.copy_view()

    def export_figure(self, path: str | Path) -> None:
        self.exporter.export_figure(path)

    def export_all(self, folder: str | Path) -> None:
        self.exporter.export_all(folder)

    @property
    def last_saved(self) -> Path | None:
        return self.exporter.exports.last_saved

    def _on_saved(self, saved: Saved) -> None:
        path = saved.path
        self.prefs.last_export_folder = str(path if path.is_dir() else path.parent)
        self._status(saved.message, 6000)

    # ======================================================================= drawing
    def refresh_view(self) -> None:
        """Show the document again (never starts a job)."""
        self.apply(self.presenter.present(self.document))

    def apply(self, view: WindowView) -> None:
        """Make every widget show ``view``."""
        self.setWindowTitle(view.title)
        self.status_badge.setVisible(view.untrained)
        self.device_label.setText(view.device_text)
        self.model_panel.set_working_note(view.working_note)
        for layer, action in self.commands.layers.items():
            action.setEnabled(view.layer_enabled[layer])
            action.setChecked(layer == view.canvas_layer)
        self.area.apply(view)
        self.layers_panel.show_layers(view.layer_visible, view.opacities, view.canvas_layer,
                                      view.layer_labels)
        self.commands.side_by_side.blockSignals(True)
        self.commands.side_by_side.setChecked(view.side_by_side)
        self.commands.side_by_side.blockSignals(False)
        self._show_choices()
        self.explain_panel.set_status(view.explain_status, view.can_compute)
        self.explain_panel.set_target_text(view.target_html)
        self.explain_panel.set_method_note(view.method_note)
        self.explain_panel.set_shapley(view.shapley)
        if view.evaluation is not None:
            self.evaluate_panel.apply(view.evaluation)
        classes = view.classes
        self.classes_panel.show_prediction(classes, view.target, classes.colors
                                           if classes is not None else None)
        self.commands.save_session.setEnabled(self.document.source is not None)
        for action in (self.commands.export_view, self.commands.export_working,
                       self.commands.copy):
            action.setEnabled(view.can_export_view)
        self.commands.export_figure.setEnabled(view.can_export_figure)
        self.commands.export_all.setEnabled(view.can_export_all)
        self.commands.compute.setEnabled(view.can_compute or view.can_export_all)
        self.commands.cancel.setEnabled(view.can_cancel)
        self.ablation.apply(view.ablation)

    # ======================================================================= hover / click
    def _on_hover(self, x: int, y: int) -> None:
        self._hover_at = (x, y)
        self._hover_timer.start()

    def _update_hover(self) -> None:
        self.hover_label.setText(self.describe_pixel(*self._hover_at))
        if self.document.ablation.active:
            self.document.ablation.hover(*self._hover_at)  # outline what a click ablates

    def layer_button_text(self, layer: str) -> str:
        """What the canvas bar's button for ``layer`` says."""
        return self.area.layer_button[layer].text()

    def _on_canvas_clicked(self, x: int, y: int) -> None:
        doc = self.document
        if doc.ablation.active:
            shift = bool(self.canvas.click_modifiers & Qt.KeyboardModifier.ShiftModifier)
            doc.ablation.click(x, y, add=shift)
            return
        pred = doc.prediction
        if pred is None or doc.prepared is None or pred.class_map.shape != doc.prepared.shape:
            return
        cls = int(pred.class_map[y, x])
        doc.set_target(cls)
        self.statusBar().showMessage(f"Target: {pred.categories[cls]}", 3000)

    def _on_tool(self, tool: str) -> None:
        """Brush and lasso draw regions in ablate mode (entered if needed)."""
        if tool != "click" and not self.document.ablation.active:
            self.document.ablation.set_active(True)
        self.canvas.set_tool(tool)

    def _on_ablate_mode(self, on: bool) -> None:
        if on:
            self.canvas.set_click_cursor(Qt.CursorShape.PointingHandCursor)
            self.ablation_dock.show()
            self.ablation_dock.raise_()
        else:
            self.canvas.set_click_cursor(Qt.CursorShape.CrossCursor)
            self.canvas.set_tool("click")
            self.ablation.panel.tool_button("click").setChecked(True)
        self.hover_label.setText(self.describe_pixel(-1, -1))

    # ======================================================================= layers
    def choose_layer(self) -> None:
        """Open the layer tree; shapes are filled in by a job when the model allows."""
        doc = self.document
        if doc.model is None:
            self.statusBar().showMessage("Load a model first.", 3000)
            return
        default = doc.default_layer
        picker = LayerPicker(doc.layers.names(), doc.analysis.layer or default, default, self)
        picker.layer_chosen.connect(self.explain_panel.set_layer)
        self.layer_picker = picker

        def deliver(infos: list[Any]) -> None:
            if self.layer_picker is picker:
                picker.set_audit(infos)

        why_not = doc.layers.request_audit(deliver)
        if why_not is not None:
            picker.set_shapes_error(why_not)
        picker.open()

    # ======================================================================= messages
    def _status(self, message: str, timeout_ms: int = 0) -> None:
        self.statusBar().showMessage(message, timeout_ms)

    def _on_failed(self, failure: Failure) -> None:
        self.last_error = failure.message
        self._status(failure.message, 8000)
        self.dialogs.error(failure.message, failure.details)

    def _on_notice(self, notice: Notice) -> None:
        if notice.replaces is not None and self.statusBar().currentMessage() == notice.replaces:
            self.statusBar().clearMessage()
        if notice.text:
            self._status(notice.text, notice.timeout_ms)
        if notice.text == "Loading PyTorch...":
            self.job_label.setText(notice.text)

    def _on_offline(self, offer: OfflineOffer) -> None:
        self.last_error = offer.message
        self.dialogs.offline(offer.architecture, offer.message, self.choose_weights_file,
                             lambda: self.model_panel.set_weights("untrained"))

    def show_shortcuts(self) -> None:
        """Help > Keyboard Shortcuts: every key of the window, from its actions."""
        self.dialogs.shortcuts(shortcut_rows(self))

    def show_about(self) -> None:
        self.dialogs.about(self.document.engine_ready)

    # ======================================================================= jobs UI
    def _on_progress(self, channel: str, done: int, total: int, message: str) -> None:
        self.job_label.setText(message)
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(1000 * min(done, total) / total))
        else:
            self.progress.setRange(0, 0)

    def _on_activity(self) -> None:
        channels = self.runner.active_channels()
        self._set_busy_widgets(bool(channels))
        if channels:
            if not self.job_label.text():
                self.job_label.setText("Working...")
        else:
            self.job_label.setText("")

    def _set_busy_widgets(self, busy: bool) -> None:
        for widget in (self.job_label, self.progress, self.cancel_button):
            widget.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)
        self.commands.cancel.setEnabled(busy or self.document.ablation.can_reset())

    def wait_until(self, predicate: Any, timeout_s: float) -> bool:
        """Process events until ``predicate()`` is true (scripts and the smoke test)."""
        import time

        deadline = time.monotonic() + timeout_s
        loop = QEventLoop()
        while not predicate():
            if time.monotonic() > deadline:
                return False
            QTimer.singleShot(20, loop.quit)
            loop.exec()
        return True

    # ======================================================================= settings / close
    def _restore_geometry(self) -> None:
        geometry = self.prefs.value("window/geometry")
        state = self.prefs.value("window/state")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1360, 860)
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)

    def save_settings(self) -> None:
        doc = self.document
        self.prefs.save_choices(doc.model_choice, doc.analysis, doc.view)
        self.prefs.save_opacities(doc.opacity)
        self.prefs.set_value("view/layer", doc.canvas_layer)
        self.prefs.set_value("view/outline", "true" if doc.outline else "false")
        self.prefs.set_value("window/geometry", self.saveGeometry())
        self.prefs.set_value("window/state", self.saveState())
        self.prefs.sync()

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.document.close()
        self.datasets.close()
        self.save_settings()
        self.dialogs.close()
        if self.layer_picker is not None:
            self.layer_picker.close()
        # Cancel cooperatively and wait briefly: the engine stops between chunks.
        self.unfinished_threads = not self.runner.shutdown(CLOSE_WAIT_S)
        event.accept()

