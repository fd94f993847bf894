"""The main window: it builds the widgets and places them.

Everything the window knows lives in its :class:`~.document.Document` (no Qt): one state
per concern, the results, the jobs. Each panel binds itself to its state (a widget edits
one field) and is registered once with the view function that says what it shows
(:class:`~.document.presenting.Presenters`); the document announces what changed after
each action, and only the views that read it are presented again. Dialogs, the clipboard,
drag and drop, settings and the status bar are the window's own helpers.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFrame,
    QMainWindow,
    QScrollArea,
    QTabBar,
    QWidget,
)

from . import wheel_guard
from .ablate_mode import AblateController
from .canvas import ImageCanvas
from .canvas_area import CanvasArea
from .canvas_control import CanvasControl
from .classes_panel import ClassesPanel
from .compare_panel import CompareCommands, ComparePanel
from .compare_view import CompareView
from .dataset_controller import DatasetController
from .dialogs import Dialogs
from .document import Document, Exports, Presenters, catalog
from .document.canvas_view import canvas_view
from .document.choices import default_model_choice
from .document.comparison_split import describe_pair_pixel, split_view
from .document.comparison_view import comparison_view
from .document.explain_view import classes_view, explain_view
from .document.messages import Failure
from .document.panel_views import ablation_view, evaluation_view
from .document.session_record import SessionRecord
from .document.window_views import budget_text, chrome_view, layers_view, model_view
from .evaluate_panel import EvaluatePanel
from .explain_panel import ExplanationPanel
from .exports import ExportsController
from .files import FileCommands
from .jobs import JobRunner
from .layers_panel import LayersPanel
from .model_cards import ModelCardsMenu, safe_start_choice
from .model_panel import ModelPanel
from .preferences import PreferencesCommand
from .screen_fit import fit_to_screen, keep_on_screen, narrow_combos
from .settings import Preferences, make_settings
from .status_bar import WindowStatus
from .unsaved import AUTOSAVE_SETTING, UnsavedWork
from .window_actions import apply_chrome, build_actions, build_menus, shortcut_rows

CLOSE_WAIT_S = 1.2  # then the process exits anyway (see app.run_app)
#: the window's size on a first run, where the screen has room for it (else the screen's)
FIRST_RUN_SIZE = (1360, 860)


def scrolling(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: a dock shorter than its panel scrolls
    instead of making the window taller than the screen. The area itself is no Tab stop
    (it shows nothing to focus); it scrolls to the field Tab reaches."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    area.setWidget(widget)
    return area


def in_hidden_tab(widget: QWidget | None) -> bool:
    """Whether ``widget`` is in a dock that is not shown: Qt keeps the docks behind
    another dock's tab "visible", moved out of sight, so Tab would walk through them
    (and a tab bar the docks no longer use, under a dock)."""
    if isinstance(widget, QTabBar) and isinstance(widget.parentWidget(), QMainWindow):
        return widget.visibleRegion().isEmpty()
    while widget is not None:
        if isinstance(widget, QDockWidget):
            return widget.visibleRegion().isEmpty()
        widget = widget.parentWidget()
    return False


class MainWindow(QMainWindow):
    """SegExplorer's main window."""

    #: the window has been painted for the first time
    first_painted = Signal()
    #: torch and the engine are imported (the startup job finished)
    engine_loaded = Signal()
    area: CanvasArea
    canvas: ImageCanvas
    exporter: ExportsController
    files: FileCommands
    ablation_dock: QDockWidget

    def __init__(self, settings: QSettings | None = None, *, interactive: bool = True,
                 num_threads: int | None = None) -> None:
        super().__init__()
        self.setObjectName("segexplorerMainWindow")
        app = QApplication.instance()
        if isinstance(app, QApplication):
            wheel_guard.install(app)  # the wheel scrolls panels (every window of the app)
        self.prefs = Preferences(settings if settings is not None else make_settings())
        if not catalog.engine_ready() and catalog.engine_already_imported():
            catalog.load_engine(count_threads=num_threads is None)  # torch is here: no wait
        self._painted = False
        self.unfinished_threads = False  # a worker outlived the close (see closeEvent)
        if num_threads is None and catalog.engine_ready():
            import torch  # imported already (the engine is)

            num_threads = torch.get_num_threads()
        # Until torch is loaded, workers leave torch's thread count alone.
        self.runner = JobRunner(self, num_threads=num_threads)
        # a model card that runs code is never reopened unasked
        start, start_note = safe_start_choice(self.prefs.model_choice(default_model_choice()),
                                              default_model_choice())
        self.document = doc = Document(self.runner, **self.prefs.document_choices(start),
                                       count_threads=num_threads is None)
        #: the session file the work is in, and the autosave of what is not
        self.session_record = record = SessionRecord(doc)
        self.presenters = Presenters(doc)
        self.dialogs = Dialogs(self, interactive)
        self._build_panels(doc)
        self._build_docks()
        self._build_commands(doc)
        self.status = WindowStatus(self, self.area.banner.styleSheet())
        self.status.bind(doc, self.runner, self.dialogs, self.prefs, self.files.choose_weights)
        self.canvas_control = CanvasControl(doc, self.presenters, self.canvas,
                                            self.status.hover_label, self.status.show)
        self.canvas_control.ablate_mode_entered.connect(self.ablation_dock.show)
        self.canvas_control.ablate_mode_entered.connect(self.ablation_dock.raise_)
        self.canvas_control.ablate_mode_entered.connect(  # both score charts are there
            lambda: self.show_comparison() if doc.comparison.active else None)
        self.compare_view.bind(doc.comparison, doc.ablation,
                               lambda x, y: describe_pair_pixel(doc, x, y),
                               self.status.hover_label.setText)
        self._register_views(doc)
        self.unsaved = UnsavedWork(self, doc, record, self.dialogs, self.exporter.export_folder,
                                   lambda m: self.status.fail(Failure("session", m),
                                                              self.dialogs),
                                   autosave=self.prefs.value(AUTOSAVE_SETTING, "true")
                                   not in (False, "false"))
        QTimer.singleShot(0, self.unsaved.offer_autosave)
        if start_note:
            self.status.show(start_note, 15000)
        doc.engine_loaded.connect(lambda info: self._on_engine_loaded(info, num_threads))
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self._restore_geometry()
        if doc.engine_ready:
            QTimer.singleShot(0, doc.preload_model)
        # else: the engine starts loading once the window has been painted

    # ======================================================================= building
    def _build_panels(self, doc: Document) -> None:
        error = lambda message: self.status.fail(Failure("export", message),  # noqa: E731
                                                 self.dialogs)
        self.model_panel = ModelPanel(self)
        self.explain_panel = ExplanationPanel(self)
        self.evaluate_panel = EvaluatePanel(self)
        self.classes_panel = ClassesPanel(self)
        self.layers_panel = LayersPanel(self)
        self.ablation = AblateController(doc, self, lambda: self.exporter.choose_export_ablation(),
                                         lambda: self.exporter.choose_export_history())
        self.area = area = CanvasArea(self.ablation.make_tool_button, self)
        self.canvas = area.canvas
        self.compare_panel = ComparePanel(self)
        self.compare_view = CompareView(area)  # replaces the canvas while comparing
        area.set_compare_page(self.compare_view)
        self.setCentralWidget(area)
        self.multi_view, self.stack = area.multi_view, area.stack
        self.banner, self.colorbar, self.legend = area.banner, area.colorbar, area.legend
        self.opacity, self.zoom_label = area.opacity, area.zoom_label
        self.ablate_button = area.ablate_button
        self.exporter = ExportsController(doc, Exports(doc), self.session_record, self,
                                          self.prefs, self.canvas,
                                          self.multi_view, lambda m, t: self.status.show(m, t),
                                          error)
        self.model_panel.bind(doc.model, lambda: self.files.choose_weights())
        self.explain_panel.bind(doc.analysis, doc.view, doc.model_layers, doc.compute)
        self.evaluate_panel.bind(doc.evaluation, self.exporter.choose_evaluation_curves,
                                 self.exporter.choose_evaluation_numbers)
        self.classes_panel.bind(doc.view, doc.layers)
        self.layers_panel.bind(doc.layers)
        area.bind(doc.layers, doc.model)

    def _build_docks(self) -> None:
        def dock(title: str, widget: QWidget, name: str, area: Qt.DockWidgetArea,
                 width: int, scroll: bool = True) -> QDockWidget:
            d = QDockWidget(title, self)
            d.setObjectName(name)
            narrow_combos(widget)
            d.setWidget(scrolling(widget) if scroll else widget)
            d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                          | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                          | QDockWidget.DockWidgetFeature.DockWidgetClosable)
            d.widget().setMinimumWidth(width)  # together they fit a 1024 px screen
            self.addDockWidget(area, d)
            return d

        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.classes_panel.setMinimumWidth(170)
        self.classes_dock = dock("Classes", self.classes_panel, "classesDock", left, 170)
        self.layers_dock = dock("Layers", self.layers_panel, "layersDock", left, 0)
        self.tabifyDockWidget(self.classes_dock, self.layers_dock)
        self.classes_dock.raise_()
        self.model_dock = dock("Model", self.model_panel, "modelDock", right, 270)
        self.explain_dock = dock("Explanation", self.explain_panel, "explainDock", right, 270)
        self.splitDockWidget(self.model_dock, self.explain_dock, Qt.Orientation.Vertical)
        self.evaluate_dock = dock("Evaluate", self.evaluate_panel, "evaluateDock", right, 270)
        self.compare_dock = dock("Compare", self.compare_panel, "compareDock", right, 270)
        self.ablation_dock = dock("Ablation", self.ablation.panel, "ablationDock", right, 270,
                                  scroll=False)  # it scrolls itself
        self.tabifyDockWidget(self.explain_dock, self.ablation_dock)
        self.tabifyDockWidget(self.ablation_dock, self.evaluate_dock)
        self.tabifyDockWidget(self.evaluate_dock, self.compare_dock)
        self.compare_dock.hide()  # Model > Compare With... shows it
        self.explain_dock.raise_()
        self.resizeDocks([self.classes_dock], [230], Qt.Orientation.Horizontal)
        self.resizeDocks([self.model_dock], [360], Qt.Orientation.Horizontal)
        self.resizeDocks([self.model_dock, self.explain_dock], [200, 520],
                         Qt.Orientation.Vertical)

    def _build_commands(self, doc: Document) -> None:
        ex, image = self.exporter, doc.image
        self.commands = build_actions(self, {
            "open": lambda: self.files.choose_image(), "paste": lambda: self.files.paste(),
            "open_session": ex.choose_session, "save_session": ex.choose_session_file,
            "export_view": ex.choose_export_view, "copy": ex.copy_view,
            "export_working": lambda: ex.choose_export_view(working=True),
            "export_figure": ex.choose_export_figure, "export_all": ex.choose_export_all,
            "escape": doc.escape, "compute": doc.compute,
            "zoom_in": lambda: self.zoomed().zoom_in(),
            "zoom_out": lambda: self.zoomed().zoom_out(),
            "fit": lambda: self.zoomed().fit_to_window(),
            "actual": lambda: self.zoomed().actual_size(),
            "outline": lambda on: setattr(doc.layers, "outline", bool(on)),
            "side_by_side": lambda on: setattr(doc.view, "side_by_side", bool(on)),
            "sample": image.open_sample,
            "about": lambda: self.dialogs.about(doc.engine_ready),
            "shortcuts": lambda: self.dialogs.shortcuts(shortcut_rows(self)),
            "layer": lambda layer: setattr(doc.layers, "chosen", layer)})
        self.commands.outline.setChecked(doc.layers.outline)
        ablation = self.ablation
        recent = build_menus(self, self.commands,
                             [ablation.action, ablation.undo_action, ablation.redo_action,
                              ablation.reset_action, ablation.export_action],
                             [self.classes_dock, self.layers_dock, self.model_dock,
                              self.explain_dock, self.ablation_dock, self.evaluate_dock,
                              self.compare_dock])
        self.files = FileCommands(self, doc, self.prefs, recent)
        self.recent_menu = recent
        self.cards = ModelCardsMenu(self, doc.model, self.prefs,
                                    lambda m: self.status.fail(Failure("card", m), self.dialogs),
                                    lambda message: self.status.show(message, 6000),
                                    ask=self.dialogs.confirm)
        self.cards.attach(before=self._menu("&View"))
        self.compare_commands = CompareCommands(
            self, doc, self.prefs,
            lambda m: self.status.fail(Failure("card", m), self.dialogs),
            lambda message: self.status.show(message, 6000), self.dialogs.confirm,
            self.show_comparison)
        self.compare_commands.attach(self.cards.menu)
        self.compare_panel.bind(doc.comparison, self.compare_commands.choose_weights,
                                self.compare_commands.choose_card)
        self.datasets = DatasetController(doc, self.presenters, self, self.prefs,
                                          self.cards.open_card, self.dialogs.error,
                                          self.compare_commands.accept_card,
                                          self.show_comparison)
        self.datasets.attach(self._menu("&File").menu(), self.commands.paste)
        self.preferences = PreferencesCommand(self, doc.model, self.prefs,
                                              lambda: budget_text(doc))
        self.preferences.attach(self._menu("&Edit").menu())

    def zoomed(self) -> Any:
        """The canvas the zoom commands act on: the split view's first (the others
        follow) while comparing."""
        return self.compare_view.canvases[0] if self.document.comparison.active \
            else self.canvas

    def show_comparison(self) -> None:
        self.compare_dock.show()
        self.compare_dock.raise_()

    def _menu(self, title: str) -> Any:
        return next(a for a in self.menuBar().actions() if a.text() == title)

    def _register_views(self, doc: Document) -> None:
        """Each panel, once, with the view that says what it shows."""
        add = self.presenters.add
        add(chrome_view, lambda view: apply_chrome(self, self.commands, self.status, view))
        add(canvas_view, self.area.apply)
        add(explain_view, self.explain_panel.apply)
        add(classes_view, self.classes_panel.apply)
        add(layers_view, self.layers_panel.apply)
        add(model_view, self.model_panel.apply)
        add(ablation_view, self.ablation.apply)
        add(evaluation_view, self.evaluate_panel.apply)
        add(comparison_view, self.compare_panel.apply)
        add(split_view, self.compare_view.apply)
        self.runner.activity_changed.connect(  # a cancelled worker winding down, done
            lambda: self.commands.cancel.setEnabled(doc.jobs.busy() or doc.ablation.can_reset()
                                                    or doc.comparison.can_reset()))
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):
            hints.colorSchemeChanged.connect(lambda *_: self.presenters.present())
        self.canvas_control.show_idle()

    # ======================================================================= start-up
    def paintEvent(self, event: Any) -> None:  # noqa: N802
        super().paintEvent(event)
        if not self._painted:
            self._painted = True
            QTimer.singleShot(0, self._on_first_paint)

    def _on_first_paint(self) -> None:
        self.first_painted.emit()
        self.document.load_engine()

    def _on_engine_loaded(self, info: catalog.EngineInfo, num_threads: int | None) -> None:
        if num_threads is None:
            self.runner.set_num_threads(info.num_threads)
        self.engine_loaded.emit()

    # ======================================================================= events
    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: N802, A002 - Qt's names
        """Tab and Shift+Tab skip the fields of the docks behind another dock's tab, and
        scroll the panel they land in to the field."""
        for _ in range(len(self.findChildren(QWidget))):
            if not super().focusNextPrevChild(next):
                return False
            focused = QApplication.focusWidget()
            if not in_hidden_tab(focused):
                area = focused.parentWidget() if focused is not None else None
                while area is not None and not isinstance(area, QScrollArea):
                    area = area.parentWidget()
                if area is not None and focused is not None:
                    area.ensureWidgetVisible(focused)
                return True
        return True

    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802
        self.files.accepts(event)

    def dropEvent(self, event: Any) -> None:  # noqa: N802
        self.files.drop(event)

    def _restore_geometry(self) -> None:
        geometry = self.prefs.value("window/geometry")
        state = self.prefs.value("window/state")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
            keep_on_screen(self)  # saved on a larger screen, or where no screen is now
        else:
            fit_to_screen(self, *FIRST_RUN_SIZE)
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        if not self.unsaved.may_close():  # Save / Discard / Cancel: its answer closes
            event.ignore()
            return
        self.document.close()
        self.datasets.close()
        self.prefs.save_document(self.document)
        self.prefs.set_value("window/geometry", self.saveGeometry())
        self.prefs.set_value("window/state", self.saveState())
        self.prefs.sync()
        self.dialogs.close()
        if self.explain_panel.layer_picker is not None:
            self.explain_panel.layer_picker.close()
        # Cancel cooperatively and wait briefly: the engine stops between chunks.
        self.unfinished_threads = not self.runner.shutdown(CLOSE_WAIT_S)
        self.unsaved.closed()
        event.accept()
