"""The main window: canvas, classes, model and explanation panels, menus, status bar.

The window keeps what the user chose (panels) and what has been computed (results keyed
by the choices that produced them). :meth:`MainWindow.schedule` compares the two and
asks the :class:`~.jobs.JobRunner` for whatever is missing; results arrive on the main
thread and only trigger drawing. View-only choices (sign, view, opacity, outlier %, the
target once computed) redraw at once and never start a job.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QByteArray, QEventLoop, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QGuiApplication,
    QKeySequence,
    QPalette,
)
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSizePolicy,
    QSlider,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from ..render import composite_over, decode_segmap, render_attribution
from ..render.normalize import NormalizedAttr
from . import catalog
from .ablate_mode import AblateController
from .ablation_panel import HINT as ABLATE_HINT
from .canvas import ImageCanvas
from .classes_panel import ClassesPanel
from .colorbar import ClassLegend, ColorBar, format_value
from .explain_panel import ExplanationPanel
from .imaging import encode_png, outline_rgba, swatch
from .jobs import JobRunner
from .layer_picker import LayerPicker, format_shape
from .model_panel import ModelPanel, untrained_badge
from .multiview import MultiView, Panel
from .options import (
    ABLATED,
    ABLATION,
    ACTIVATION,
    ATTRIBUTION,
    DEFAULT_OPACITY,
    GRADCAM,
    IMAGE,
    LAYER_LABELS,
    METHOD_LABELS,
    SEGMENTATION,
    SIGN_LABELS,
    SIGNED_ONLY_VIEWS,
    VIEW_LABELS,
    AnalysisChoice,
    ModelChoice,
    ViewChoice,
)
from .preview import PreviewController, wants_preview
from .settings import Preferences, make_settings
from .window_exports import ExportsMixin

if TYPE_CHECKING:  # the engine imports torch: the window loads it in a worker
    from ..engine.session import Session

IMAGE_FILTER = ("Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp *.ppm *.pgm);;"
                "All files (*)")
SAMPLE_IMAGE = "sample_astronaut.jpg"
PLACEHOLDER = ("Open an image (Ctrl+O), drop one here, paste one (Ctrl+V),\n"
               "or try Help > Open sample image.")
RENDER_CACHE_SIZE = 24
AGGREGATION_SHORT = {"argmax": "argmax-masked score", "sum": "summed score"}
HOVER_HINT = "Hover over the image to read a pixel's class and score; click to explain it."

CLOSE_WAIT_S = 1.2  # then the process exits anyway (see app.run_app)
_source_ids = itertools.count(1)


@dataclass(frozen=True)
class ImageSource:
    """Where the current image came from: a file or encoded bytes (the clipboard)."""

    key: int
    label: str
    path: str | None = None
    data: bytes | None = None

    def load(self):
        from ..engine.image import load_image

        return load_image(self.data if self.data is not None else self.path)


def sample_image_path() -> Path:
    """The bundled sample photo, found through importlib.resources (works when frozen)."""
    ref = resources.files("segexplorer").joinpath("resources", SAMPLE_IMAGE)
    return Path(str(ref))


def about_versions(torch_loaded: bool = True) -> list[str]:
    """'PyTorch 2.x (CUDA 12.x)', 'torchvision ...', ... for the About box.

    Torch and friends are imported here only when the engine has loaded them already:
    the About box never blocks the window for seconds.
    """
    import platform
    import sys
    from importlib import metadata

    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qVersion

    def version(module: str, dist: str) -> str:
        loaded = sys.modules.get(module)
        found = getattr(loaded, "__version__", None) if loaded is not None else None
        if found is None:
            try:
                found = metadata.version(dist)
            except metadata.PackageNotFoundError:
                found = "not installed"
        return str(found)

    lines = []
    if torch_loaded:
        import torch

        cuda = torch.version.cuda
        lines.append(f"PyTorch {torch.__version__}"
                     + (f" (CUDA {cuda})" if cuda else " (no CUDA)"))
    else:
        lines.append(f"PyTorch {version('torch', 'torch')} (still loading)")
    lines += [f"torchvision {version('torchvision', 'torchvision')}",
              f"Captum {version('captum', 'captum')}",
              f"NumPy {version('numpy', 'numpy')}",
              f"Matplotlib {version('matplotlib', 'matplotlib')}",
              f"PySide6 {pyside_version}, Qt {qVersion()}",
              f"Python {platform.python_version()}"
              + (" (application bundle)" if getattr(sys, "frozen", False) else "")]
    return lines


def _engine_architecture(name: str):
    """The engine's Architecture called ``name`` (the engine must be loaded), or None."""
    from ..engine.models import ARCHITECTURES

    return ARCHITECTURES.get(name)


class MainWindow(QMainWindow, ExportsMixin):
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
            catalog.load_engine(count_threads=num_threads is None)  # torch is imported already (tests, scripts): no wait
        self._engine_ready = catalog.engine_ready()
        self._painted = False
        self._num_threads = num_threads
        if num_threads is None and self._engine_ready:
            import torch  # imported already (the engine is)

            num_threads = torch.get_num_threads()
        # Until torch is loaded, workers leave torch's thread count alone.
        self.runner = JobRunner(self, num_threads=num_threads)
        self.last_error: str | None = None
        self.unfinished_threads = False
        self._closing = False

        # What is loaded and computed
        self._source: ImageSource | None = None
        self._pil = None
        self._prepared = None
        self._image_key: tuple | None = None
        self._model = None
        self._model_key: tuple | None = None
        self._session: Session | None = None
        self._prediction = None
        self._predict_key: tuple | None = None
        self._gradcams: dict[tuple, object] = {}
        self._sweeps: dict[tuple, object] = {}
        self._ablated: dict[tuple, np.ndarray] = {}
        self._shapes: dict[tuple, dict] = {}
        self._target: int | None = None
        self._segmap: np.ndarray | None = None
        self._render_cache: dict[tuple, tuple] = {}
        self._current_normalized: NormalizedAttr | None = None
        self._current_attr: np.ndarray | None = None
        self._inflight: dict[str, tuple[int, tuple]] = {}
        self._blocked: dict[str, tuple] = {}
        self._layer_picker: LayerPicker | None = None
        self._message_box: QMessageBox | None = None
        self._offline_box: QMessageBox | None = None
        self._opacity = dict(DEFAULT_OPACITY)
        self._opacity.update(self.prefs.opacities())
        self._layer = IMAGE
        self._shown: dict[str, object] = {"base": None, "overlay": None, "outline": None}
        self.last_saved: Path | None = None

        default_model = ModelChoice(catalog.DEFAULT_ARCHITECTURE, "default",
                                    catalog.devices()[0], catalog.DEFAULT_SIZE)
        model_choice = self.prefs.model_choice(default_model)
        if model_choice.architecture not in catalog.architectures():
            model_choice = default_model
        self._architecture = model_choice.architecture
        self.model_panel = ModelPanel(model_choice, self)
        self.explain_panel = ExplanationPanel(self.prefs.analysis_choice(),
                                              self.prefs.view_choice(), self)
        self.classes_panel = ClassesPanel(self)
        self.ablation = AblateController(self)
        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_status_bar()
        self.preview = PreviewController(self.statusBar(), self)
        self.preview.changed.connect(self.refresh_view)
        self._connect()
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self._restore_geometry()
        stored_layer = str(self.prefs.value("view/layer", ATTRIBUTION) or ATTRIBUTION)
        self._layer = stored_layer if stored_layer in LAYER_LABELS else ATTRIBUTION
        self._update_default_layer()
        self._update_title()
        self.refresh_view()
        if self._engine_ready:
            QTimer.singleShot(0, self._preload_model)
        # else: the engine starts loading once the window has been painted

    # ======================================================================= start-up
    def paintEvent(self, event) -> None:  # noqa: N802
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
        return self._engine_ready

    def load_engine(self) -> None:
        """Import torch and the engine in the 'startup' job (once; never on this thread)."""
        if self._engine_ready or self._closing:
            return
        if catalog.engine_ready():  # loaded by a job whose answer was cancelled
            self._on_engine_loaded(catalog.engine_info())
            return
        if self.runner.is_busy("startup"):
            return
        self.runner.submit("startup", catalog.load_engine, on_result=self._on_engine_loaded,
                           on_error=self._on_engine_error, label="Loading PyTorch...",
                           uses_model=False)
        self.job_label.setText("Loading PyTorch...")
        self.statusBar().showMessage("Loading PyTorch...")

    def _on_engine_loaded(self, info: catalog.EngineInfo) -> None:
        if self._engine_ready:
            return
        self._engine_ready = True
        if self._num_threads is None:
            self.runner.set_num_threads(info.num_threads)
        self.model_panel.engine_loaded()
        self._update_default_layer()
        self.statusBar().showMessage(f"PyTorch loaded in {info.import_seconds:.1f} s.", 4000)
        self.engine_loaded.emit()
        if self._source is not None:
            self.schedule()  # an image opened meanwhile: its model may be downloaded
        else:
            self._preload_model()

    def _on_engine_error(self, message: str, details: str) -> None:
        self._show_error(f"PyTorch could not be loaded: {message}", details)

    def _preload_model(self) -> None:
        """Load the model before an image is opened, unless that means a download."""
        if self._model is not None or self._closing or not self._engine_ready:
            return
        from ..engine.weights import cached_weights_path

        choice = self.model_choice
        arch = _engine_architecture(choice.architecture)
        if choice.weights == "default":
            path = cached_weights_path(arch) if arch is not None else None
            if path is None or not path.is_file():
                return  # downloads start when an image needs the model
        elif choice.weights != "untrained" and not Path(choice.weights).is_file():
            return
        self.schedule()

    # ======================================================================= building
    def _build_central(self) -> None:
        central = QWidget(self)
        column = QVBoxLayout(central)
        column.setContentsMargins(6, 6, 6, 4)
        column.setSpacing(4)
        self.banner = untrained_badge(
            central, "UNTRAINED WEIGHTS: this model is random (demo mode); its segmentation "
                     "and explanations mean nothing.")
        self.banner.setObjectName("untrainedBanner")
        self.banner.setVisible(False)
        column.addWidget(self.banner)

        bar = QHBoxLayout()
        bar.setSpacing(4)
        self.layer_buttons = QButtonGroup(self)
        self.layer_buttons.setExclusive(True)
        self._layer_button: dict[str, QToolButton] = {}
        for i, (layer, label) in enumerate(LAYER_LABELS.items()):
            button = QToolButton(central)
            button.setText(label)
            button.setCheckable(True)
            button.setAutoRaise(False)
            button.setObjectName(f"layerButton_{layer}")
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setToolTip(f"Show {label.lower()} (Alt+{i + 1})")
            self.layer_buttons.addButton(button, i)
            self._layer_button[layer] = button
            bar.addWidget(button)
        bar.addSpacing(8)
        self.ablate_button = self.ablation.make_tool_button(central)
        bar.addWidget(self.ablate_button)
        bar.addSpacing(12)
        self.opacity_label = QLabel("Opacity", central)
        bar.addWidget(self.opacity_label)
        self.opacity = QSlider(Qt.Orientation.Horizontal, central)
        self.opacity.setObjectName("opacitySlider")
        self.opacity.setRange(0, 100)
        self.opacity.setMinimumWidth(60)  # narrow windows keep the whole bar
        self.opacity.setMaximumWidth(120)
        self.opacity.setToolTip("Opacity of the shown layer over the image")
        bar.addWidget(self.opacity, 1)
        bar.addStretch(1)
        self.zoom_label = QLabel("", central)
        self.zoom_label.setMinimumWidth(48)
        self.zoom_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        bar.addWidget(self.zoom_label)
        self._zoom_buttons = []
        for text, tip, slot in (("-", "Zoom out (Ctrl+-)", "zoom_out"),
                                ("+", "Zoom in (Ctrl++)", "zoom_in"),
                                ("Fit", "Fit to window (Ctrl+0)", "fit_to_window"),
                                ("1:1", "Actual pixels (Ctrl+1)", "actual_size")):
            button = QToolButton(central)
            button.setText(text)
            button.setToolTip(tip)
            button.setMinimumWidth(30)
            button.clicked.connect(partial(self._canvas_call, slot))
            bar.addWidget(button)
            self._zoom_buttons.append(button)
        column.addLayout(bar)

        self.canvas = ImageCanvas(central)
        self.canvas.set_placeholder(PLACEHOLDER)
        self.multi_view = MultiView(central)
        self.stack = QStackedWidget(central)
        self.stack.addWidget(self.canvas)
        self.stack.addWidget(self.multi_view)
        column.addWidget(self.stack, 1)
        # The footer keeps its height whatever it shows, so the canvas never jumps.
        self.footer = QStackedWidget(central)
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
        column.addWidget(self.footer)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        def dock(title: str, widget: QWidget, name: str, area) -> QDockWidget:
            d = QDockWidget(title, self)
            d.setObjectName(name)
            d.setWidget(widget)
            d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                          | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                          | QDockWidget.DockWidgetFeature.DockWidgetClosable)
            self.addDockWidget(area, d)
            return d

        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.classes_dock = dock("Classes", self.classes_panel, "classesDock", left)
        self.model_dock = dock("Model", self.model_panel, "modelDock", right)
        self.explain_dock = dock("Explanation", self.explain_panel, "explainDock", right)
        self.splitDockWidget(self.model_dock, self.explain_dock, Qt.Orientation.Vertical)
        self.ablation_dock = dock("Ablation", self.ablation.panel, "ablationDock", right)
        self.tabifyDockWidget(self.explain_dock, self.ablation_dock)
        self.explain_dock.raise_()
        self.classes_panel.setMinimumWidth(200)
        self.explain_panel.setMinimumWidth(300)
        self.resizeDocks([self.classes_dock], [230], Qt.Orientation.Horizontal)
        self.resizeDocks([self.model_dock], [360], Qt.Orientation.Horizontal)
        self.resizeDocks([self.model_dock, self.explain_dock], [200, 520],
                         Qt.Orientation.Vertical)

    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable=False) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.setCheckable(checkable)
        if slot is not None:
            # Pass the checked state only to toggles: most slots take no argument.
            if checkable:
                action.toggled.connect(slot)
            else:
                action.triggered.connect(lambda *_args, slot=slot: slot())
        return action

    def _build_actions(self) -> None:
        K = QKeySequence.StandardKey
        self.open_action = self._action("&Open Image...", self.choose_image, K.Open,
                                        "Open an image file")
        self.paste_action = self._action("&Paste Image", self.paste_image, K.Paste,
                                         "Open the image on the clipboard")
        self.export_view_action = self._action("&Export View as PNG...", self.choose_export_view,
                                               K.Save, "Save what the canvas shows, at the "
                                               "working resolution")
        self.copy_action = self._action("&Copy View", self.copy_view, K.Copy,
                                        "Copy what the canvas shows to the clipboard")
        self.export_figure_action = self._action(
            "Export &Figure...", self.choose_export_figure, K.SaveAs,
            "A figure drawn by Captum's own visualisation (PNG, SVG or PDF)")
        self.export_all_action = self._action(
            "Export &All...", self.choose_export_all, "Ctrl+E",
            "Everything 'segexplorer explain' writes: PNGs, arrays and a JSON report")
        self.quit_action = self._action("&Quit", self.close, K.Quit)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.cancel_action = self._action("&Cancel Running Jobs", self._on_escape, "Esc",
                                          "Stop the computation in progress (in ablate "
                                          "mode, first restore the original)")
        self.zoom_in_action = self._action("Zoom &In", self.canvas.zoom_in, K.ZoomIn)
        self.zoom_out_action = self._action("Zoom &Out", self.canvas.zoom_out, K.ZoomOut)
        self.fit_action = self._action("&Fit to Window", self.canvas.fit_to_window, "Ctrl+0")
        self.actual_action = self._action("&Actual Pixels", self.canvas.actual_size, "Ctrl+1")
        self.outline_action = self._action("Outline &Target Segment", None, checkable=True)
        self.outline_action.setChecked(str(self.prefs.value("view/outline", "true")) == "true")
        self.outline_action.toggled.connect(lambda *_: self.refresh_view())
        self.side_by_side_action = self._action(
            "&Side by Side", lambda on: self.explain_panel.side_by_side.setChecked(on),
            "Ctrl+M", checkable=True)
        self.layer_actions = QActionGroup(self)
        self._layer_action: dict[str, QAction] = {}
        for i, (layer, label) in enumerate(LAYER_LABELS.items()):
            action = self._action(f"Show {label}", None, f"Alt+{i + 1}", checkable=True)
            action.triggered.connect(lambda *_args, layer=layer: self.set_layer(layer))
            self.layer_actions.addAction(action)
            self._layer_action[layer] = action
        self.sample_action = self._action("Open &Sample Image", self.open_sample_image,
                                          tip="The NASA astronaut portrait (public domain)")
        self.about_action = self._action("&About SegExplorer", self.show_about)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_qt_action = self._action("About &Qt", QApplication.aboutQt)
        self.about_qt_action.setMenuRole(QAction.MenuRole.AboutQtRole)
        self.compute_action = self._action("&Compute", self.compute, "Ctrl+R",
                                           "Run the computation the current view needs")

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addAction(self.paste_action)
        file_menu.addSeparator()
        file_menu.addAction(self.export_view_action)
        file_menu.addAction(self.export_figure_action)
        file_menu.addAction(self.export_all_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.copy_action)
        edit_menu.addAction(self.paste_action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.compute_action)
        edit_menu.addAction(self.cancel_action)
        edit_menu.addSeparator()
        edit_menu.addAction(self.ablation.action)
        edit_menu.addAction(self.ablation.reset_action)
        edit_menu.addAction(self.ablation.export_action)
        view_menu = bar.addMenu("&View")
        for action in self.layer_actions.actions():
            view_menu.addAction(action)
        view_menu.addSeparator()
        view_menu.addAction(self.side_by_side_action)
        view_menu.addAction(self.outline_action)
        view_menu.addSeparator()
        for action in (self.zoom_in_action, self.zoom_out_action, self.fit_action,
                       self.actual_action):
            view_menu.addAction(action)
        view_menu.addSeparator()
        for dock in (self.classes_dock, self.model_dock, self.explain_dock,
                     self.ablation_dock):
            view_menu.addAction(dock.toggleViewAction())
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.sample_action)
        help_menu.addSeparator()
        help_menu.addAction(self.about_action)
        help_menu.addAction(self.about_qt_action)
        self._update_recent_menu()

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
        self.runner.progress.connect(self._on_progress)
        self.runner.activity_changed.connect(self._on_activity)
        self.runner.failed.connect(lambda ch, msg, det: self._show_error(msg, det))
        self.model_panel.changed.connect(self._on_model_choice)
        self.model_panel.browse_weights_requested.connect(self.choose_weights_file)
        self.explain_panel.analysis_changed.connect(self._on_analysis_choice)
        self.explain_panel.view_changed.connect(self._on_view_choice)
        self.explain_panel.compute_requested.connect(self.compute)
        self.explain_panel.choose_layer_requested.connect(self.choose_layer)
        self.classes_panel.target_selected.connect(self.set_target)
        self.canvas.hovered.connect(self._on_hover)
        self.canvas.clicked.connect(self._on_canvas_clicked)
        self.canvas.zoom_changed.connect(
            lambda z: self.zoom_label.setText(f"{z * 100:.0f} %"))
        self.layer_buttons.idClicked.connect(
            lambda i: self.set_layer(list(LAYER_LABELS)[i]))
        self.opacity.valueChanged.connect(self._on_opacity)
        self._hover_timer = QTimer(self)  # hover text is cheap but coalesce anyway
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(15)
        self._hover_timer.timeout.connect(self._update_hover)
        self._hover_at: tuple[int, int] = (-1, -1)
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):
            hints.colorSchemeChanged.connect(lambda *_: self.refresh_view())

    # ======================================================================= choices
    @property
    def model_choice(self) -> ModelChoice:
        return self.model_panel.choice()

    @property
    def analysis_choice(self) -> AnalysisChoice:
        return self.explain_panel.analysis()

    @property
    def view_choice(self) -> ViewChoice:
        return self.explain_panel.view_choice()

    @property
    def target(self) -> int | None:
        return self._target

    @property
    def prediction(self):
        return self._prediction

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def model(self):
        return self._model

    @property
    def layer(self) -> str:
        return self._layer

    def _on_model_choice(self, choice: ModelChoice) -> None:
        self._blocked.pop("model", None)
        if choice.architecture != self._architecture:
            self._architecture = choice.architecture
            self._update_default_layer()
            self.explain_panel.set_layer("")  # the old layer path means nothing here
        self.schedule()

    def _on_analysis_choice(self, choice: AnalysisChoice) -> None:
        for channel in ("gradcam", "sweep", "ablated"):
            self._blocked.pop(channel, None)
        self.schedule()

    def _on_view_choice(self, choice: ViewChoice) -> None:
        self.side_by_side_action.setChecked(choice.side_by_side)
        self.refresh_view()

    def set_target(self, cls: int | None) -> None:
        """Make ``cls`` the explained class (view-only once the results exist)."""
        if cls == self._target:
            return
        self._target = cls
        self.classes_panel.set_target(cls)
        self.schedule()

    def set_layer(self, layer: str) -> None:
        """Show one canvas layer: image, segmentation, attribution or ablated input."""
        if layer not in LAYER_LABELS:
            raise ValueError(f"unknown layer {layer!r}")
        self._layer = layer
        self.schedule()

    # ======================================================================= files
    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self.prefs.last_folder,
                                              IMAGE_FILTER)
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> None:
        """Open an image file (it replaces the current one once it has loaded)."""
        path = str(Path(path).expanduser())
        self._open_source(ImageSource(next(_source_ids), Path(path).name, path=path))

    def open_image_bytes(self, data: bytes, label: str = "<clipboard>") -> None:
        self._open_source(ImageSource(next(_source_ids), label, data=bytes(data)))

    def open_sample_image(self) -> None:
        path = sample_image_path()
        if path.is_file():
            self.open_image(path)
        else:  # inside a zip or frozen archive: read the bytes instead
            data = resources.files("segexplorer").joinpath("resources", SAMPLE_IMAGE)
            self.open_image_bytes(data.read_bytes(), SAMPLE_IMAGE)

    def paste_image(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime is not None and mime.hasImage():
            image = QGuiApplication.clipboard().image()
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

    def _open_source(self, source: ImageSource) -> None:
        size = self.model_choice.size
        key = (source.key, size)

        def job(state):
            from ..engine.image import preprocess

            pil = source.load()
            state.set_progress(1, 2, "Preparing the image")
            return pil, preprocess(pil, size)

        self._blocked.pop("image", None)
        self._request("image", key, job, partial(self._on_image_loaded, source, key),
                      label=f"Opening {source.label}", uses_model=False)

    def _on_image_loaded(self, source: ImageSource, key: tuple, result) -> None:
        pil, prepared = result
        new_image = self._source is None or source.key != self._source.key
        self._source, self._pil, self._prepared, self._image_key = source, pil, prepared, key
        self._clear_prediction()
        if new_image:
            if source.path:
                self.prefs.last_folder = str(Path(source.path).parent)
                self.prefs.add_recent_file(source.path)
                self._update_recent_menu()
            self.canvas.set_base(None)  # a new image always starts fitted to the window
        self.canvas.set_base(prepared.rgb)
        self._shown["base"] = prepared
        self.hover_label.setText(HOVER_HINT)
        self._update_title()

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

    # drag and drop
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        mime = event.mimeData()
        if mime.hasImage() or any(u.isLocalFile() for u in mime.urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
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

    # ======================================================================= scheduling
    def _predict_target_key(self) -> tuple | None:
        if self._image_key is None or self._model_key is None:
            return None
        return self._model_key, self._image_key, self.model_choice.precision

    def _gradcam_key(self, choice: AnalysisChoice) -> tuple:
        agg = choice.aggregation
        return self._predict_key, choice.layer or "", agg, choice.upsample

    def _sweep_key(self, choice: AnalysisChoice) -> tuple:
        return self._predict_key, choice.segments, choice.baseline, choice.aggregation

    def _ablated_key(self, choice: AnalysisChoice) -> tuple:
        return self._predict_key, choice.segments, choice.baseline, self._target

    def schedule(self, force: bool = False) -> None:
        """Ask for whatever the current choices need and is not computed; then redraw.

        ``force`` retries work that failed or was cancelled with the same choices.
        """
        if self._closing:
            return
        choice = self.model_choice
        if not self._engine_ready:
            self.load_engine()  # model work waits for torch
        elif choice.key != self._model_key:
            self._request_model(choice, force)
        if self._source is not None and self._pil is not None:
            image_key = (self._source.key, choice.size)
            if image_key != self._image_key:
                self._request_resize(image_key, force)
        want = self._predict_target_key()
        if want is not None \
                and want == (choice.key, (self._source.key, choice.size), choice.precision) \
                and self._predict_key != want:
            self._request_predict(want, force)
        if self._prediction is not None:
            analysis = self.analysis_choice
            if analysis.method in (GRADCAM, ACTIVATION):
                key = self._gradcam_key(analysis)
                if key not in self._gradcams:
                    self._request_gradcam(key, analysis, force)
            elif analysis.method == ABLATION:
                key = self._sweep_key(analysis)
                if key not in self._sweeps:
                    self._request_sweep(key, analysis, force)
            if self._layer == ABLATED and self._target is not None \
                    and not self.ablation.active:
                key = self._ablated_key(analysis)
                if key not in self._ablated:
                    self._request_ablated(key, analysis, force)
        self.refresh_view()

    def compute(self) -> None:
        """Run what the current view needs, even if it failed or was cancelled before."""
        self.schedule(force=True)

    def _request(self, channel: str, key: tuple, fn, on_result, *, label: str,
                 uses_model: bool = True, lends_model: bool = False,
                 force: bool = False) -> bool:
        current = self._inflight.get(channel)
        if current is not None and current[1] == key and self.runner.is_current(channel,
                                                                                current[0]):
            return False  # already on its way
        if not force and self._blocked.get(channel) == key:
            return False  # failed or cancelled with these very choices: wait to be asked
        self._blocked.pop(channel, None)
        rid = self.runner.submit(
            channel, fn,
            on_result=partial(self._on_job_result, channel, on_result),
            on_error=partial(self._on_job_error, channel, key),
            label=label, uses_model=uses_model, lends_model=lends_model)
        self._inflight[channel] = (rid, key)
        return True

    def _on_job_result(self, channel: str, handler, result) -> None:
        self._inflight.pop(channel, None)
        handler(result)
        self.schedule()

    def _on_job_error(self, channel: str, key: tuple, message: str, details: str) -> None:
        self._inflight.pop(channel, None)
        if channel == "predict":
            self.preview.clear()
        self._blocked[channel] = key
        if channel == "model" and self._offer_offline_choices(key, message):
            self.refresh_view()
            return
        self._show_error(message, details)
        self.refresh_view()

    def _on_escape(self) -> None:
        """Esc: in ablate mode with a selection, back to the original; else cancel jobs."""
        if not (self.ablation.can_reset() and self.ablation.reset()):
            self.cancel_jobs()

    def cancel_channel(self, channel: str) -> None:
        """Cancel one channel's job (its result, if any, is dropped)."""
        if self._inflight.pop(channel, None) is not None:
            self.runner.cancel(channel)
        if channel == "predict":
            self.preview.clear()

    def cancel_jobs(self) -> None:
        """Cancel every running computation (Esc / the status bar's Cancel)."""
        if not self._inflight and not self.runner.is_busy():
            return
        for channel, (_rid, key) in list(self._inflight.items()):
            self._blocked[channel] = key
        self._inflight.clear()
        self.runner.cancel_all()
        self.preview.clear()
        if not self._engine_ready:  # loading torch is never cancelled: start it again
            QTimer.singleShot(0, self.load_engine)
        self.statusBar().showMessage("Cancelled. Press Compute (Ctrl+R) to run it again.",
                                     5000)
        self.refresh_view()

    @property
    def predict_key(self) -> tuple | None:
        return self._predict_key

    def image_label(self) -> str:
        return (self._source.path or self._source.label) if self._source else ""

    def sweep_for(self, segments: str, baseline: str, aggregation: str = "argmax"):
        """The ablation sweep computed for these choices, if any."""
        return self._sweeps.get((self._predict_key, segments, baseline, aggregation))

    def request_sweep(self, segments: str, baseline: str) -> None:
        """Run the argmax-masked sweep for these segments and baseline (serves clicks)."""
        if self._prediction is None:
            return
        choice = replace(self.analysis_choice, segments=segments, baseline=baseline,
                         aggregation="argmax")
        key = self._sweep_key(choice)
        if key not in self._sweeps:
            self._request_sweep(key, choice, force=True)
        self.refresh_view()

    def is_running(self, channel: str) -> bool:
        return channel in self._inflight

    def has_result(self, method: str | None = None) -> bool:
        """Whether the result ``method`` needs (default: the chosen one) is computed."""
        if self._prediction is None:
            return False
        choice = self.analysis_choice
        if (method or choice.method) in (GRADCAM, ACTIVATION):
            return self._gradcam_key(choice) in self._gradcams
        return self._sweep_key(choice) in self._sweeps

    # -- the jobs -------------------------------------------------------------------------
    def _request_model(self, choice: ModelChoice, force: bool) -> None:
        arch, weights, device = choice.key

        def job(state):
            from ..engine.models import load_model

            return load_model(arch, weights, device, state=state)

        self._request("model", choice.key, job, partial(self._on_model_loaded, choice.key),
                      label=f"Loading {arch}", uses_model=False, force=force)

    def _on_model_loaded(self, key: tuple, model) -> None:
        self._model, self._model_key = model, key
        self._clear_prediction()
        self._update_default_layer()
        self._update_title()

    def _request_resize(self, image_key: tuple, force: bool) -> None:
        pil, source = self._pil, self._source
        size = image_key[1]
        def job(state):
            from ..engine.image import preprocess

            return pil, preprocess(pil, size)

        self._request("image", image_key, job,
                      partial(self._on_image_loaded, source, image_key),
                      label="Resizing the image", uses_model=False, force=force)

    def _request_predict(self, key: tuple, force: bool) -> None:
        model, prepared = self._model, self._prepared
        analysis = self.analysis_choice
        # Grad-CAM's forward pass also gives the prediction: when the view needs Grad-CAM
        # (or the activation), one pass answers both instead of two.
        with_gradcam = analysis.method in (GRADCAM, ACTIVATION)
        layer = analysis.layer or None

        precision = key[2]

        def job(state):
            from ..engine.session import Session

            session = Session(model, prepared, precision=precision)
            if not with_gradcam:
                return session, session.predict(state), None
            from ..engine.aggregation import Aggregation

            gradcam = session.gradcam(None, layer, Aggregation(analysis.aggregation),
                                      analysis.upsample, state)
            return session, session.predict(state), (analysis, gradcam)

        if wants_preview(model, prepared.size):  # a slow device: a quick look first
            job = self.preview.wrap(job, model, self._pil, self.analysis_choice, key,
                                    prepared.size)
        if self._request("predict", key, job, partial(self._on_predicted, key),
                         label="Predicting", force=force):
            self.preview.expect(self._inflight["predict"][0], key)

    def _on_predicted(self, key: tuple, result) -> None:
        self._clear_prediction(full_size_arrived=True)
        self._session, self._prediction, gradcam = result
        self._predict_key = key
        if gradcam is not None:  # computed by the same forward pass as the prediction
            analysis, value = gradcam
            self._store(self._gradcams, self._gradcam_key(analysis), value)
        self._segmap = decode_segmap(self._prediction.class_map, self._prediction.colors)
        present = self._prediction.present_classes
        if self._target not in present:
            foreground = [c for c in present if c != 0]
            self._target = (foreground or present or [None])[0]
        self.classes_panel.set_target(self._target)
        self.classes_panel.set_prediction(self._prediction)

    def _request_gradcam(self, key: tuple, choice: AnalysisChoice, force: bool) -> None:
        session = self._session
        layer = choice.layer or None

        def job(state):
            from ..engine.aggregation import Aggregation

            return session.gradcam(None, layer, Aggregation(choice.aggregation),
                                   choice.upsample, state)

        self._request("gradcam", key, job, partial(self._store, self._gradcams, key),
                      label="Grad-CAM for every class", force=force)

    def _request_sweep(self, key: tuple, choice: AnalysisChoice, force: bool) -> None:
        session, class_map = self._session, self._prediction.class_map

        def job(state):
            from ..engine.aggregation import Aggregation
            from ..engine.segments import make_segments

            segments = make_segments(class_map, choice.segments)
            return session.sweep(segments, choice.baseline, Aggregation(choice.aggregation),
                                 state)

        self._request("sweep", key, job, partial(self._store, self._sweeps, key),
                      label="Ablation sweep", lends_model=True, force=force)

    def _request_ablated(self, key: tuple, choice: AnalysisChoice, force: bool) -> None:
        session, class_map, target = self._session, self._prediction.class_map, self._target

        def job(state):
            from ..engine.image import denormalize
            from ..engine.segments import make_segments

            segments = make_segments(class_map, choice.segments)
            ids = [s.id for s in segments.info if s.class_index == target]
            return denormalize(session.ablated_input(segments, ids, choice.baseline))

        self._request("ablated", key, job, partial(self._store, self._ablated, key),
                      label="Ablating the target", uses_model=False, force=force)

    def _store(self, cache: dict, key: tuple, value) -> None:
        if key[0] == self._predict_key:  # results for an older prediction are dropped
            cache[key] = value

    def _clear_prediction(self, full_size_arrived: bool = False) -> None:
        self.preview.clear(full_size_arrived)
        for channel in ("predict", "gradcam", "sweep", "ablated", "shapes", "export"):
            if channel in self._inflight:
                self.runner.cancel(channel)
                self._inflight.pop(channel, None)
        for channel in ("gradcam", "sweep", "ablated"):
            self._blocked.pop(channel, None)
        self._session = self._prediction = self._predict_key = self._segmap = None
        self._gradcams.clear()
        self._sweeps.clear()
        self._ablated.clear()
        self._render_cache.clear()
        self.ablation.clear()
        self.classes_panel.set_prediction(None)

    # ======================================================================= drawing
    def _attribution(self) -> tuple[np.ndarray, str, tuple] | str:
        """(H x W map, colour-bar caption, cache key) or why there is none."""
        pred = self._prediction
        if pred is None:
            return "Waiting for the model's prediction."
        choice, target = self.analysis_choice, self._target
        if target is None and choice.method != ACTIVATION:
            return "Pick a target class in the Classes panel or on the image."
        name = pred.categories[target] if target is not None else "?"
        hide = self.view_choice.hide_target and target is not None
        if choice.method in (GRADCAM, ACTIVATION):
            key = self._gradcam_key(choice)
            result = self._gradcams.get(key)
            if result is None:
                return self._missing_text("gradcam", "Grad-CAM")
            shape = format_shape(result.activation_shape)
            if choice.method == ACTIVATION:
                attr = result.activation_upsampled
                caption = (f"Mean activation of {result.layer} ({shape}) over channels, "
                           "upsampled bilinear")
                cache_key = (key, "activation", target if hide else None, hide)
            else:
                if target not in result.upsampled:
                    return f"No Grad-CAM for '{name}': it is not predicted in this image."
                attr = result.upsampled[target]
                caption = (f"Grad-CAM of '{name}' at {result.layer} ({shape}), "
                           f"{AGGREGATION_SHORT[result.aggregation]}")
                cache_key = (key, "gradcam", target, hide)
        else:
            key = self._sweep_key(choice)
            sweep = self._sweeps.get(key)
            if sweep is None:
                return self._missing_text("sweep", "The ablation sweep")
            attr = sweep.attribution_map(target)
            caption = (f"Drop in the '{name}' score when each segment is replaced by the "
                       f"{sweep.baseline} baseline ({sweep.segments.count} segments)")
            cache_key = (key, "ablation", target, hide)
        if hide:
            from ..engine.session import hide_target

            attr = hide_target(attr, pred.class_map, target)
            caption += "; target segment hidden"
        return attr, caption, cache_key

    def _missing_text(self, channel: str, what: str) -> str:
        if channel in self._inflight:
            return f"{what} is being computed..."
        if channel in self._blocked:
            return f"{what} was cancelled or failed. Press Compute to run it."
        return f"{what} has not been computed. Press Compute."

    def _render(self, attr: np.ndarray, cache_key: tuple, view: str, sign: str,
                outlier: float):
        key = (cache_key, view, sign, outlier)
        hit = self._render_cache.get(key)
        if hit is not None:
            return hit
        rendered = render_attribution(attr, self._prepared.rgb, view, sign, outlier)
        rgba = rendered.rgba
        if view == "alpha_scaling":  # Captum draws it over the white axes background
            rgba = composite_over(rgba)
        if len(self._render_cache) >= RENDER_CACHE_SIZE:
            self._render_cache.pop(next(iter(self._render_cache)))
        self._render_cache[key] = (rgba, rendered.normalized)
        return rgba, rendered.normalized

    def refresh_view(self) -> None:
        """Redraw everything from what is already computed (never starts a job)."""
        pred, prepared, view = self._prediction, self._prepared, self.view_choice
        self._sync_layer_controls()
        if self._shown["base"] is not prepared:
            self.canvas.set_base(prepared.rgb if prepared is not None else None)
            self._shown["base"] = prepared
        overlay, normalized, caption, message = None, None, "", ""
        self._current_attr = None
        attribution = self._attribution() if prepared is not None else "Open an image."
        segmap, note = self._segmap, ""
        previewing = self.preview.showing(pred, prepared)
        if previewing:  # display only: hover, clicks and exports wait for the full result
            note = self.preview.result.note
            segmap = self.preview.segmap(prepared.shape)
            attribution = self.preview.attribution(
                self.analysis_choice, self._target, view.hide_target,
                prepared.shape) or attribution
        if self._layer == SEGMENTATION and segmap is not None:
            overlay = segmap
        elif self._layer == ATTRIBUTION:
            if isinstance(attribution, str):
                message = attribution
            else:
                attr, caption, cache_key = attribution
                try:
                    overlay, normalized = self._render(attr, cache_key, view.view, view.sign,
                                                       view.outlier)
                    self._current_attr = None if previewing else attr
                except ValueError as exc:
                    message = f"Cannot draw this attribution: {exc}"
        elif self._layer == ABLATED and pred is not None and self.ablation.active:
            overlay, message = self.ablation.canvas_overlay()
        elif self._layer == ABLATED and pred is not None:
            overlay = self._ablated.get(self._ablated_key(self.analysis_choice))
            if overlay is None:
                message = self._missing_text("ablated", "The ablated input")
        if self._shown["overlay"] is not overlay:
            self.canvas.set_overlay(overlay)
            self._shown["overlay"] = overlay
        self.canvas.set_overlay_opacity(self._opacity.get(self._layer, 1.0))
        if self.ablation.active:  # the segments selected for ablation
            outline_key, outline = self.ablation.outline()
            if self._shown["outline"] != outline_key:
                self.canvas.set_outline(outline)
                self._shown["outline"] = outline_key
        else:
            show_outline = (self.outline_action.isChecked() and pred is not None
                            and self._target is not None and self._layer != IMAGE)
            outline_key = (self._predict_key, self._target) if show_outline else None
            if self._shown["outline"] != outline_key:
                self.canvas.set_outline(outline_rgba(pred.class_map == self._target)
                                        if show_outline else None)
                self._shown["outline"] = outline_key
        self._current_normalized = normalized
        units = self._units_caption(caption, normalized)
        if note:
            units = f"{note}; {units}" if units else note
            message = f"{note}. {message}" if message else ""
        self.colorbar.set_attribution(normalized, units)
        self._update_footer(normalized, message or units, view)
        self._update_multi_view(attribution, view)
        self._update_explain_status(message or note, attribution)
        self._update_target_text()
        self._update_badges()
        self._update_actions()
        self.ablation.refresh()

    def _update_footer(self, normalized, text: str, view: ViewChoice) -> None:
        pred = self._prediction
        if normalized is not None and not view.side_by_side:
            self.footer.setCurrentWidget(self.colorbar)
        elif self._layer == SEGMENTATION and pred is not None and not view.side_by_side:
            colors = pred.colors
            self.legend.set_entries([(pred.categories[c], tuple(int(v) for v in colors[c]))
                                     for c in pred.present_classes])
            self.footer.setCurrentWidget(self.legend)
        else:
            self.footer_message.setText(text if self._prepared is not None else "")
            self.footer.setCurrentWidget(self.footer_message)

    def _units_caption(self, caption: str, normalized: NormalizedAttr | None) -> str:
        if normalized is None:
            return ""
        view = self.view_choice
        clip = f"saturates at {format_value(abs(normalized.scale))} ({view.outlier:g} % clipped)"
        return f"{caption}; {clip}" if caption else clip

    def _update_multi_view(self, attribution, view: ViewChoice) -> None:
        self.stack.setCurrentWidget(self.multi_view if view.side_by_side else self.canvas)
        if not view.side_by_side:
            return
        if self._prepared is None:
            self.multi_view.set_message("Open an image.")
            return
        if isinstance(attribution, str):
            self.multi_view.set_message(attribution)
            return
        attr, _caption, cache_key = attribution
        panels = [Panel("Image", self._prepared.rgb)]
        method = view.view
        method_label = VIEW_LABELS[method]
        for sign in ("all", "positive", "negative"):
            use = method
            if sign == "all" and method in SIGNED_ONLY_VIEWS:
                use = "blended_heat_map"  # Captum cannot mask with both signs
            try:
                rgba, normalized = self._render(attr, cache_key, use, sign, view.outlier)
            except ValueError as exc:
                self.multi_view.set_message(f"Cannot draw this attribution: {exc}")
                return
            label = VIEW_LABELS[use] if use != method else method_label
            panels.append(Panel(f"{label}, {SIGN_LABELS[sign].lower()}", rgba, normalized))
        self.multi_view.set_panels(panels)

    def _update_explain_status(self, message: str, attribution) -> None:
        choice = self.analysis_choice
        can_compute = self._prediction is not None
        text = message
        if not text and self._prediction is not None:
            if choice.method in (GRADCAM, ACTIVATION):
                result = self._gradcams.get(self._gradcam_key(choice))
                if result is not None:
                    text = (f"{METHOD_LABELS[choice.method]} at {result.layer} "
                            f"({format_shape(result.activation_shape)}): "
                            f"{len(result.raw)} class{'es' if len(result.raw) != 1 else ''} from one pass, "
                            f"{result.seconds:.2f} s.")
            else:
                sweep = self._sweeps.get(self._sweep_key(choice))
                if sweep is not None:
                    text = (f"Sweep: {sweep.segments.count} segments, {sweep.forward_passes} "
                            f"forward passes, {sweep.seconds:.2f} s; serves every class.")
        if not text and isinstance(attribution, str):
            text = attribution
        needed = "gradcam" if choice.method in (GRADCAM, ACTIVATION) else "sweep"
        can_compute = can_compute and needed not in self._inflight and not (
            needed == "gradcam" and self._gradcam_key(choice) in self._gradcams) and not (
            needed == "sweep" and self._sweep_key(choice) in self._sweeps)
        self.explain_panel.set_status(text, can_compute)

    def _update_target_text(self) -> None:
        pred, target = self._prediction, self._target
        if pred is None or target is None:
            self.explain_panel.set_target_text("<b>Target:</b> none yet")
            return
        rgb = pred.colors[target]
        colour = "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))
        self.explain_panel.set_target_text(
            f"<b>Target:</b> <span style='background:{colour}'>&nbsp;&nbsp;&nbsp;</span> "
            f"<b>{pred.categories[target]}</b> (class {target}, "
            f"{pred.share(target) * 100:.1f} % of pixels)")

    def _sync_layer_controls(self) -> None:
        have_pred = self._prediction is not None
        for layer, button in self._layer_button.items():
            enabled = layer == IMAGE or have_pred
            button.setEnabled(enabled)
            self._layer_action[layer].setEnabled(enabled)
            button.setChecked(layer == self._layer)
            self._layer_action[layer].setChecked(layer == self._layer)
        self.opacity.blockSignals(True)
        self.opacity.setValue(round(self._opacity.get(self._layer, 1.0) * 100))
        self.opacity.blockSignals(False)
        self.opacity.setEnabled(self._layer != IMAGE)
        self.opacity_label.setEnabled(self._layer != IMAGE)

    def _update_badges(self) -> None:
        untrained = self._model is not None and self._model.untrained
        self.banner.setVisible(untrained)
        self.status_badge.setVisible(untrained)
        if self._model is not None:
            from ..engine.devices import describe_device

            fast = self._session is not None and self._session.precision == "bf16"
            self.device_label.setText(f"{self._model.name} on {describe_device(self._model.device)}"
                                      + (", fast mode (bf16)" if fast else ""))
        else:
            self.device_label.setText("no model loaded")

    def _update_actions(self) -> None:
        has_view = (self._prepared is not None
                    and not self.preview.showing(self._prediction, self._prepared))
        for action in (self.export_view_action, self.copy_action):
            action.setEnabled(has_view)
        self.export_figure_action.setEnabled(self._current_attr is not None)
        self.export_all_action.setEnabled(self._prediction is not None)
        self.compute_action.setEnabled(self._prediction is not None)
        self.cancel_action.setEnabled(self.runner.is_busy() or self.ablation.can_reset())

    def _update_title(self) -> None:
        parts = []
        if self._source is not None:
            parts.append(self._source.label)
        parts.append("SegExplorer")
        title = " - ".join(parts)
        if self._model is not None and self._model.untrained:
            title += " [untrained weights]"
        self.setWindowTitle(title)

    def _update_default_layer(self) -> None:
        arch = catalog.architectures().get(self.model_choice.architecture)
        if arch is not None:
            self.explain_panel.set_default_layer(arch.default_layer)

    def _on_opacity(self, value: int) -> None:
        self._opacity[self._layer] = value / 100.0
        self.canvas.set_overlay_opacity(value / 100.0)

    def _canvas_call(self, name: str) -> None:
        getattr(self.canvas, name)()

    # ======================================================================= hover / click
    def _on_hover(self, x: int, y: int) -> None:
        self._hover_at = (x, y)
        self._hover_timer.start()

    def _update_hover(self) -> None:
        x, y = self._hover_at
        self.hover_label.setText(self.describe_pixel(x, y))

    def describe_pixel(self, x: int, y: int) -> str:
        """The status-bar text for image pixel (x, y)."""
        if x < 0 or self._prepared is None:
            if self._prepared is None:
                return ""
            return ABLATE_HINT if self.ablation.active else HOVER_HINT
        sx, sy = self._prepared.scale
        text = f"x {x}, y {y}  (original {x / sx:.0f}, {y / sy:.0f})"
        pred = self._prediction
        if pred is not None and pred.class_map.shape == self._prepared.shape:
            cls, score, prob = pred.describe_pixel(x, y)
            text += f"   {pred.categories[cls]}: score {score:.3g}, p {prob * 100:.0f} %"
        if self._layer == ATTRIBUTION and self._current_attr is not None:
            text += f"   attribution {format_value(float(self._current_attr[y, x]))}"
        return text

    def _on_canvas_clicked(self, x: int, y: int) -> None:
        if self.ablation.active:
            shift = bool(self.canvas.click_modifiers & Qt.KeyboardModifier.ShiftModifier)
            self.ablation.click(x, y, add=shift)
            return
        pred = self._prediction
        if pred is None or pred.class_map.shape != self._prepared.shape:
            return
        cls = int(pred.class_map[y, x])
        self.set_target(cls)
        self.statusBar().showMessage(f"Target: {pred.categories[cls]}", 3000)

    # ======================================================================= layers
    def choose_layer(self) -> None:
        """Open the layer tree; shapes are filled in by a job when the model allows."""
        if self._model is None:
            self.statusBar().showMessage("Load a model first.", 3000)
            return
        from ..engine.models import list_layers

        arch = self._model.arch
        picker = LayerPicker(list_layers(self._model.module),
                             self.analysis_choice.layer or arch.default_layer,
                             arch.default_layer, self)
        picker.layer_chosen.connect(self.explain_panel.set_layer)
        self._layer_picker = picker
        self._fill_layer_shapes(picker)
        picker.open()

    def _fill_layer_shapes(self, picker: LayerPicker) -> None:
        if self._session is None:
            picker.set_shapes_error("open an image first")
            return
        key = self._predict_key
        if key in self._shapes:
            picker.set_shapes(self._shapes[key])
            return
        session = self._session

        def job(state):
            from .layer_shapes import layer_output_shapes

            return layer_output_shapes(session.model.module, session.input)

        def done(shapes):
            self._shapes[key] = shapes
            if self._layer_picker is picker:
                picker.set_shapes(shapes)

        self._request("shapes", key, job, done, label="Measuring layer shapes", force=True)

    # ======================================================================= messages
    def _show_error(self, message: str, details: str = "") -> None:
        self.last_error = message
        self.statusBar().showMessage(message, 8000)
        if not self.interactive:
            return
        box = QMessageBox(QMessageBox.Icon.Warning if not details else QMessageBox.Icon.Critical,
                          "SegExplorer", message, QMessageBox.StandardButton.Ok, self)
        if details:
            box.setInformativeText("This is a bug in SegExplorer; the details help fix it.")
            box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self._message_box = box
        box.open()

    def _offer_offline_choices(self, key: tuple, message: str) -> bool:
        """Default weights that are not cached and could not be fetched: offer a way on."""
        from ..engine.weights import cached_weights_path

        arch_name, weights, _device = key
        arch = _engine_architecture(arch_name)
        if weights != "default" or arch is None:
            return False
        path = cached_weights_path(arch)
        if path is not None and path.is_file():
            return False
        self.last_error = message
        if not self.interactive:
            return False
        box = QMessageBox(QMessageBox.Icon.Information, "Model weights unavailable",
                          f"The trained weights for {arch_name} are not on this computer "
                          "and could not be downloaded.", QMessageBox.StandardButton.Cancel,
                          self)
        box.setInformativeText(message)
        load = box.addButton("Load weights file...", QMessageBox.ButtonRole.ActionRole)
        demo = box.addButton("Use untrained weights (demo)", QMessageBox.ButtonRole.AcceptRole)
        load.clicked.connect(self.choose_weights_file)
        demo.clicked.connect(lambda: self.model_panel.set_weights("untrained"))
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self._offline_box = box
        box.open()
        return True

    def show_about(self) -> None:
        text = (f"<h3>SegExplorer {__version__}</h3>"
                "<p>See why a semantic segmentation model labels each region the way it "
                "does: Layer Grad-CAM, layer activations and feature ablation by segment, "
                "computed with the same numbers as Captum.</p>"
                f"<p>{'<br>'.join(about_versions(self._engine_ready))}</p>"
                "<p>Sample image: astronaut Eileen Collins, NASA (public domain), as "
                "distributed by scikit-image.</p><p>BSD-3-Clause licence.</p>")
        box = QMessageBox(QMessageBox.Icon.NoIcon, "About SegExplorer", text,
                          QMessageBox.StandardButton.Ok, self)
        icon = self.windowIcon()
        pixmap = icon.pixmap(64, 64) if not icon.isNull() else None
        box.setIconPixmap(pixmap if pixmap is not None and not pixmap.isNull()
                          else swatch((192, 128, 128), 48))
        self._message_box = box
        box.open()

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
        self.cancel_action.setEnabled(busy or self.ablation.can_reset())

    def wait_until(self, predicate, timeout_s: float) -> bool:
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
        self.prefs.save_choices(self.model_choice, self.analysis_choice, self.view_choice)
        self.prefs.save_opacities(self._opacity)
        self.prefs.set_value("view/layer", self._layer)
        self.prefs.set_value("view/outline", "true" if self.outline_action.isChecked()
                             else "false")
        self.prefs.set_value("window/geometry", self.saveGeometry())
        self.prefs.set_value("window/state", self.saveState())
        self.prefs.sync()

    def closeEvent(self, event) -> None:  # noqa: N802
        self._closing = True
        self.save_settings()
        for box in (self._message_box, self._offline_box, self._layer_picker):
            if box is not None:
                box.close()
        # Cancel cooperatively and wait briefly: the engine stops between chunks.
        self.unfinished_threads = not self.runner.shutdown(CLOSE_WAIT_S)
        event.accept()
