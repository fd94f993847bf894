"""The window's message boxes: errors, missing weights, About.

Each box is window-modal and opened (never exec'd), so jobs and repaints go on; the
window keeps the latest one in :attr:`Dialogs.current` (tests and closing use it).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from .. import __version__
from .imaging import swatch


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


def about_methods() -> str:
    """'9 attribution methods: Layer Grad-CAM, ... and Guided Grad-CAM' (the registry's)."""
    from ..engine.methods import METHOD_REGISTRY

    labels = [info.label for info in METHOD_REGISTRY.values()]
    listed = ", ".join(labels[:-1]) + " and " + labels[-1] if len(labels) > 1 else labels[0]
    return f"{len(labels)} attribution methods: {listed}"


class Dialogs:
    """Opens the window's message boxes (none when the window is not interactive)."""

    def __init__(self, parent: QWidget, interactive: bool) -> None:
        self.parent = parent
        self.interactive = interactive
        self.current: QMessageBox | None = None
        # what confirm() answers when the window is not interactive (scripts, tests)
        self.unattended_answer = False

    def confirm(self, title: str, text: str, accept: str = "Run It") -> bool:
        """A yes/no question that waits for the answer (Cancel is the default)."""
        if not self.interactive:
            return self.unattended_answer
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=self.parent)
        yes = box.addButton(accept, QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        self.current = box
        box.exec()
        return box.clickedButton() is yes

    def _open(self, box: QMessageBox) -> QMessageBox:
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.current = box
        box.open()
        return box

    def error(self, message: str, details: str = "") -> None:
        if not self.interactive:
            return
        box = QMessageBox(QMessageBox.Icon.Warning if not details else QMessageBox.Icon.Critical,
                          "SegExplorer", message, QMessageBox.StandardButton.Ok, self.parent)
        if details:
            box.setInformativeText("This is a bug in SegExplorer; the details help fix it.")
            box.setDetailedText(details)
        self._open(box)

    def offline(self, architecture: str, message: str, load_file: Callable[[], None],
                use_untrained: Callable[[], None]) -> None:
        """Default weights that are not cached and could not be fetched: offer a way on."""
        if not self.interactive:
            return
        box = QMessageBox(QMessageBox.Icon.Information, "Model weights unavailable",
                          f"The trained weights for {architecture} are not on this computer "
                          "and could not be downloaded.", QMessageBox.StandardButton.Cancel,
                          self.parent)
        box.setInformativeText(message)
        load = box.addButton("Load weights file...", QMessageBox.ButtonRole.ActionRole)
        demo = box.addButton("Use untrained weights (demo)", QMessageBox.ButtonRole.AcceptRole)
        load.clicked.connect(load_file)
        demo.clicked.connect(use_untrained)
        self._open(box)

    def unsaved_work(self, text: str, informative: str,
                     on_answer: Callable[[str], None]) -> None:
        """Save / Discard / Cancel (window-modal, opened): ``on_answer("save")``..."""
        buttons = {QMessageBox.StandardButton.Save: "save",
                   QMessageBox.StandardButton.Discard: "discard",
                   QMessageBox.StandardButton.Cancel: "cancel"}
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved ablations", text,
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self.parent)
        box.setInformativeText(informative)
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda *_: on_answer(
            buttons.get(box.standardButton(box.clickedButton()), "cancel")))
        self._open(box)

    def restore_offer(self, text: str, informative: str,
                      on_answer: Callable[[bool], None]) -> None:
        """Restore / Discard a session left behind; closing the box decides nothing."""
        box = QMessageBox(QMessageBox.Icon.Question, "Restore session", text,
                          parent=self.parent)
        box.setInformativeText(informative)
        restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(restore)

        def answered(*_: object) -> None:
            clicked = box.clickedButton()
            if clicked is restore or clicked is discard:
                on_answer(clicked is restore)

        box.finished.connect(answered)
        self._open(box)

    def shortcuts(self, rows: list[tuple[str, str]]) -> None:
        """A page of (keys, what they do) rows."""
        from html import escape

        table = "".join(f"<tr><td><b>{escape(keys)}</b>&nbsp;&nbsp;</td><td>{escape(what)}</td>"
                        "</tr>" for keys, what in rows)
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts",
                          f"<table>{table}</table>", QMessageBox.StandardButton.Close,
                          self.parent)
        self.current = box
        box.open()

    def about(self, torch_loaded: bool) -> None:
        from html import escape

        text = (f"<h3>SegExplorer {__version__}</h3>"
                "<p>See why a semantic segmentation model labels each region the way it "
                f"does, with {escape(about_methods())}, each computed with the same numbers "
                "as its Captum call.</p>"
                f"<p>{'<br>'.join(about_versions(torch_loaded))}</p>"
                "<p>Sample image: astronaut Eileen Collins, NASA (public domain), as "
                "distributed by scikit-image.</p><p>BSD-3-Clause licence.</p>")
        box = QMessageBox(QMessageBox.Icon.NoIcon, "About SegExplorer", text,
                          QMessageBox.StandardButton.Ok, self.parent)
        icon = self.parent.windowIcon()
        pixmap = icon.pixmap(64, 64) if not icon.isNull() else None
        box.setIconPixmap(pixmap if pixmap is not None and not pixmap.isNull()
                          else swatch((192, 128, 128), 48))
        self.current = box
        box.open()

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
