"""The main window's actions and menus (what each does is the window's or the document's),
and what the window's own content shows (:func:`apply_chrome`: the title, which commands
are enabled)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QMenu

from .document.choices import LAYER_LABELS

if TYPE_CHECKING:
    from .document.window_views import ChromeView
    from .status_bar import WindowStatus


def make_action(parent: QMainWindow, text: str, slot: Callable[..., Any] | None,
                shortcut: Any = None, tip: str = "", checkable: bool = False) -> QAction:
    action = QAction(text, parent)
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


@dataclass
class WindowActions:
    """Every action of the window's menus, by name."""

    open: QAction
    open_session: QAction
    save_session: QAction
    paste: QAction
    export_view: QAction
    export_working: QAction
    copy: QAction
    export_figure: QAction
    export_all: QAction
    quit: QAction
    cancel: QAction
    compute: QAction
    zoom_in: QAction
    zoom_out: QAction
    fit: QAction
    actual: QAction
    outline: QAction
    side_by_side: QAction
    sample: QAction
    shortcuts: QAction
    about: QAction
    about_qt: QAction
    layers: dict[str, QAction] = field(default_factory=dict)
    layer_group: QActionGroup | None = None


def build_actions(window: QMainWindow, slots: dict[str, Callable[..., Any]]) -> WindowActions:
    """The window's actions; ``slots`` names what each one calls."""
    K = QKeySequence.StandardKey
    act = make_action
    actions = WindowActions(
        open=act(window, "&Open Image...", slots["open"], K.Open, "Open an image file"),
        open_session=act(window, "Open Sessio&n...", slots["open_session"], "Ctrl+Shift+O",
                         "A session saved before: image, model, choices and ablations"),
        save_session=act(window, "Save Sess&ion...", slots["save_session"], "Ctrl+Alt+S",
                         "The image, the model, every choice and the ablation history in "
                         "one file"),
        paste=act(window, "&Paste Image", slots["paste"], K.Paste,
                  "Open the image on the clipboard"),
        export_view=act(window, "&Export View as PNG...", slots["export_view"], K.Save,
                        "Save what the canvas shows, at the image's own resolution"),
        export_working=act(window, "Export View at &Working Resolution...",
                           slots["export_working"],
                           tip="Save what the canvas shows, pixel for pixel as the model "
                               "saw the image"),
        copy=act(window, "&Copy View", slots["copy"], K.Copy,
                 "Copy what the canvas shows to the clipboard"),
        export_figure=act(window, "Export &Figure...", slots["export_figure"], K.SaveAs,
                          "The map as the window shows it (side by side too), drawn by "
                          "Captum's own visualisation, titled and labelled (PNG, SVG or "
                          "PDF)"),
        export_all=act(window, "Export &All...", slots["export_all"], "Ctrl+E",
                       "Everything 'segexplorer explain' writes: PNGs, arrays and a JSON "
                       "report"),
        quit=act(window, "&Quit", window.close, K.Quit),
        cancel=act(window, "&Cancel Running Jobs", slots["escape"], "Esc",
                   "Stop the computation in progress (in ablate mode, first restore the "
                   "original)"),
        compute=act(window, "&Compute", slots["compute"], "Ctrl+R",
                    "Run the computation the current view needs"),
        zoom_in=act(window, "Zoom &In", slots["zoom_in"], K.ZoomIn),
        zoom_out=act(window, "Zoom &Out", slots["zoom_out"], K.ZoomOut),
        fit=act(window, "&Fit to Window", slots["fit"], "Ctrl+0"),
        actual=act(window, "&Actual Pixels", slots["actual"], "Ctrl+1"),
        outline=act(window, "Outline &Target Segment", slots["outline"], checkable=True),
        side_by_side=act(window, "&Side by Side", slots["side_by_side"], "Ctrl+M",
                         checkable=True),
        sample=act(window, "Open &Sample Image", slots["sample"],
                   tip="The NASA astronaut portrait (public domain)"),
        shortcuts=act(window, "&Keyboard Shortcuts", slots["shortcuts"], "F1",
                      "Every key and mouse gesture of the window"),
        about=act(window, "&About SegExplorer", slots["about"]),
        about_qt=act(window, "About &Qt", QApplication.aboutQt),
    )
    # Ctrl+= is Ctrl++ without Shift on most keyboards
    actions.zoom_in.setShortcuts([QKeySequence(K.ZoomIn), QKeySequence("Ctrl+=")])
    actions.quit.setMenuRole(QAction.MenuRole.QuitRole)
    actions.about.setMenuRole(QAction.MenuRole.AboutRole)
    actions.about_qt.setMenuRole(QAction.MenuRole.AboutQtRole)
    actions.layer_group = QActionGroup(window)
    for i, (layer, label) in enumerate(LAYER_LABELS.items()):
        action = act(window, f"Show {label}", None, f"Alt+{i + 1}", checkable=True)
        action.triggered.connect(lambda *_args, layer=layer: slots["layer"](layer))
        actions.layer_group.addAction(action)
        actions.layers[layer] = action
    return actions


#: what the mouse does, for the shortcuts page (keys come from the actions themselves)
MOUSE_GESTURES = (
    ("Click the image", "Make the class under the cursor the target (in ablate mode: "
                        "ablate its segment)"),
    ("Shift+click", "In ablate mode: add or remove a segment"),
    ("Drag", "Pan the image"),
    ("Wheel", "Zoom about the cursor"),
    ("Wheel over a panel", "Scroll the panel; a drop-down or number changes with the wheel "
                           "only once clicked or reached with Tab"),
    ("Hover", "Read the class, score and attribution under the cursor"),
)


#: what a key does besides its action's name
KEY_ALSO = {Qt.Key.Key_Escape: "in ablate mode, first back to the original image; in a "
                               "dialog, close it"}
#: the order of the shortcuts page: plain keys, then each set of modifiers
MODIFIER_ORDER = (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier,
                  Qt.KeyboardModifier.ControlModifier,
                  Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
                  Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier,
                  Qt.KeyboardModifier.AltModifier)


def _first_key(sequence: QKeySequence) -> Any:
    """The sequence's first key with its modifiers (a ``QKeyCombination``)."""
    return sequence[0]  # type: ignore[index]  # (the stubs miss QKeySequence.__getitem__)


def _key_order(sequence: QKeySequence) -> tuple[int, int]:
    """Plain keys first, then Shift, Ctrl, Ctrl+Shift, Ctrl+Alt, Alt; within a set of
    modifiers, by key (Alt+1 before Alt+2, Ctrl+C before Ctrl+O)."""
    combination = _first_key(sequence)
    modifiers = combination.keyboardModifiers()
    group = next((i for i, m in enumerate(MODIFIER_ORDER) if modifiers == m),
                 len(MODIFIER_ORDER))
    return group, int(combination.key().value)


def shortcut_rows(window: QMainWindow) -> list[tuple[str, str]]:
    """(keys, what they do) for every action of the window that has a shortcut, in the
    order of their keys, then the mouse gestures: the Help > Keyboard Shortcuts page."""
    rows: list[tuple[tuple[int, int], str, str]] = []
    seen: set[str] = set()
    for action in window.findChildren(QAction):
        sequences = [s for s in action.shortcuts() if not s.isEmpty()]
        text = action.text().replace("&", "").rstrip(".")
        if not sequences or text in seen:
            continue
        seen.add(text)
        keys = ", ".join(dict.fromkeys(  # once each (a standard key may repeat another)
            s.toString(QKeySequence.SequenceFormat.NativeText) for s in sequences))
        also = [KEY_ALSO[_first_key(s).key()] for s in sequences
                if _first_key(s).key() in KEY_ALSO]
        rows.append((_key_order(sequences[0]), keys, "; ".join([text, *also])))
    return [(keys, text) for _order, keys, text in sorted(rows)] + list(MOUSE_GESTURES)


def build_menus(window: QMainWindow, actions: WindowActions, ablation: list[QAction],
                docks: list[QDockWidget]) -> QMenu:
    """File, Edit, View and Help; returns the Open Recent menu (the window fills it)."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addAction(actions.open)
    recent = file_menu.addMenu("Open &Recent")
    file_menu.addAction(actions.paste)
    file_menu.addSeparator()
    file_menu.addAction(actions.open_session)
    file_menu.addAction(actions.save_session)
    file_menu.addSeparator()
    for action in (actions.export_view, actions.export_working, actions.export_figure,
                   actions.export_all):
        file_menu.addAction(action)
    file_menu.addSeparator()
    file_menu.addAction(actions.quit)
    edit_menu = bar.addMenu("&Edit")
    edit_menu.addAction(actions.copy)
    edit_menu.addAction(actions.paste)
    edit_menu.addSeparator()
    edit_menu.addAction(actions.compute)
    edit_menu.addAction(actions.cancel)
    edit_menu.addSeparator()
    for action in ablation:
        edit_menu.addAction(action)
    view_menu = bar.addMenu("&View")
    for action in actions.layers.values():
        view_menu.addAction(action)
    view_menu.addSeparator()
    view_menu.addAction(actions.side_by_side)
    view_menu.addAction(actions.outline)
    view_menu.addSeparator()
    for action in (actions.zoom_in, actions.zoom_out, actions.fit, actions.actual):
        view_menu.addAction(action)
    view_menu.addSeparator()
    for dock in docks:
        view_menu.addAction(dock.toggleViewAction())
    help_menu = bar.addMenu("&Help")
    help_menu.addAction(actions.sample)
    help_menu.addAction(actions.shortcuts)
    help_menu.addSeparator()
    help_menu.addAction(actions.about)
    help_menu.addAction(actions.about_qt)
    return recent


def apply_chrome(window: QMainWindow, actions: WindowActions, status: WindowStatus,
                 view: ChromeView) -> None:
    """The title, the status bar's badge and device, and which commands are enabled."""
    window.setWindowTitle(view.title)
    status.set_device(view.untrained, view.device_text)
    for layer, action in actions.layers.items():
        action.setEnabled(view.layer_enabled[layer])
        action.setChecked(layer == view.chosen)
    with QSignalBlocker(actions.side_by_side):
        actions.side_by_side.setChecked(view.side_by_side)
    actions.save_session.setEnabled(view.can_save_session)
    for action in (actions.export_view, actions.export_working, actions.copy):
        action.setEnabled(view.can_export_view)
    actions.export_figure.setEnabled(view.can_export_figure)
    actions.export_all.setEnabled(view.can_export_all)
    actions.compute.setEnabled(view.can_compute)
    actions.cancel.setEnabled(view.can_cancel)
