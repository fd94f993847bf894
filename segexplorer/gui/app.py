"""Starting the window, and ``segexplorer --smoke-test``.

``run_app`` is what the command line calls: ``segexplorer [IMAGE]`` opens the window,
``segexplorer --smoke-test [--screenshot PATH]`` checks a build end to end (real main
window at the size it opens with on a first run, which must fit the screen; offscreen where
there is no display; sample image, untrained weights on the CPU, prediction + Grad-CAM +
ablation sweep through the same job machinery).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

SMOKE_ARCHITECTURE = "lraspp_mobilenet_v3_large"  # the fastest torchvision architecture
SMOKE_SIZE = 160
SMOKE_TIMEOUT_S = 600.0
DESKTOP_FILE_NAME = "io.github.segexplorer.SegExplorer"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)
#: set to 1 to print when the window is first painted and when torch has loaded, then
#: quit (benchmarks/bench_startup.py)
STARTUP_PROBE_ENV = "SEGEXPLORER_STARTUP_PROBE"


def _app_icon():
    """The application icon from the packaged PNGs (sizes that are missing are skipped)."""
    from importlib.resources import files

    from PySide6.QtGui import QIcon

    icon = QIcon()
    folder = files("segexplorer").joinpath("resources", "icons")
    for size in ICON_SIZES:
        ref = folder.joinpath(f"segexplorer-{size}.png")
        try:
            if ref.is_file():
                icon.addFile(str(ref))
        except OSError:
            continue
    return icon


def _needs_offscreen() -> bool:
    if sys.platform.startswith(("win", "darwin")):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _application(argv: list[str] | None, offscreen: bool):
    """The QApplication (created if there is none) and whether this call created it."""
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    created = existing is None
    app = existing if isinstance(existing, QApplication) else None
    if app is None:
        if offscreen and "QT_QPA_PLATFORM" not in os.environ:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        app = QApplication(list(argv) if argv else [sys.argv[0] if sys.argv else "segexplorer"])
    from .settings import APPLICATION, ORGANIZATION

    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("SegExplorer")
    from .. import __version__

    app.setApplicationVersion(__version__)
    app.setDesktopFileName(DESKTOP_FILE_NAME)
    app.setWindowIcon(_app_icon())
    return app, created


_BENIGN_QT_MESSAGES = (
    "This plugin does not support propagateSizeHints()",  # the offscreen platform
)


def _install_message_filter() -> None:
    """Keep Qt's known-harmless platform chatter out of the console."""
    from PySide6.QtCore import qInstallMessageHandler

    def handler(_mode, _context, message: str) -> None:
        if any(benign in message for benign in _BENIGN_QT_MESSAGES):
            return
        print(message, file=sys.stderr)

    qInstallMessageHandler(handler)


def run_app(argv: list[str] | None = None, image: str | None = None,
            smoke_test: bool = False, screenshot: str | None = None) -> int:
    """Open the main window (on ``image`` if given) and run until it closes.

    With ``smoke_test`` the window runs the whole analysis once and closes; the return
    value is 0 on success, else 1 with a one-line reason printed on stderr.
    """
    # Figures are drawn into files, never into matplotlib windows.
    os.environ.setdefault("MPLBACKEND", "Agg")
    app, created = _application(argv, offscreen=smoke_test and _needs_offscreen())
    if app.platformName() == "offscreen":
        _install_message_filter()
    if smoke_test:
        return _finish(_smoke_test(app, screenshot), created)

    from .main_window import MainWindow

    # Torch is not imported yet: the window paints first, then loads it in a worker.
    window = MainWindow()
    if sys.platform == "darwin":  # Finder's "Open With" sends the file as an event
        open_files_from_the_desktop(app, window.open_image)
    if os.environ.get(STARTUP_PROBE_ENV) == "1":
        _install_startup_probe(app, window)
    window.show()
    if image:
        window.document.image.open(image)
    return _finish(app.exec(), created)


def open_files_from_the_desktop(app, open_file):
    """Open the files macOS hands the running app: Finder's "Open With", a file dropped on the
    Dock icon, a double-click on a document type the app declares. They arrive as a
    ``QFileOpenEvent`` to the application, at start-up as later, not on the command line.
    Returns the event filter (installed on ``app``)."""
    from PySide6.QtCore import QEvent, QObject

    class FileOpenFilter(QObject):
        def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
            if event.type() == QEvent.Type.FileOpen and event.file():
                open_file(event.file())
                return True
            return False

    handler = FileOpenFilter(app)
    app.installEventFilter(handler)
    return handler


def _install_startup_probe(app, window) -> None:
    """Print 'startup-probe painted <epoch s>' and 'startup-probe torch <epoch s>
    <import s>', then quit: what benchmarks/bench_startup.py measures."""

    def report(what: str, extra: str = "") -> None:
        print(f"startup-probe {what} {time.time():.6f}{extra}", flush=True)

    window.first_painted.connect(lambda: report("painted"))

    def loaded() -> None:
        from .document import catalog

        info = catalog.engine_info()
        report("torch", f" {info.import_seconds:.6f}" if info is not None else "")
        app.quit()

    window.engine_loaded.connect(loaded)


def _finish(code: int, created: bool) -> int:
    """Leave at once when this process is the application.

    Settings are saved and every job cancelled when the window closes; what remains is
    Python tearing down torch and a model of hundreds of MB (seconds), or a worker still
    inside one native call (it stops at its next check). Neither is worth waiting for:
    the window must be gone, and the process with it, within 2 s.
    """
    if not created:
        return code  # embedded (tests, scripts): the caller owns the process
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _smoke_test(app, screenshot: str | None) -> int:
    from PySide6.QtCore import QSettings

    from .document.choices import ABLATION, ATTRIBUTION, GRADCAM, ModelChoice
    from .main_window import MainWindow

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="segexplorer-smoke-") as tmp:
        # Never read or change the user's settings.
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings, interactive=False)
        try:
            # At the size a first run opens with (no saved geometry in these settings): the
            # smoke test sees the window a new user sees, on this screen.
            doc = window.document
            doc.model.set(ModelChoice(SMOKE_ARCHITECTURE, "untrained", "cpu", SMOKE_SIZE))
            doc.analysis.method = GRADCAM
            doc.layers.chosen = ATTRIBUTION
            asked = window.size()  # before a window manager can clamp it
            window.show()
            app.processEvents()
            too_big = _window_outside_screen(window, asked.width(), asked.height())
            doc.image.open_sample()
            steps = [
                ("prediction", lambda: doc.store.prediction is not None),
                ("Grad-CAM", lambda: doc.store.has_result(GRADCAM)),
            ]
            reason = _wait_steps(window, steps, started)
            if reason is None:
                doc.analysis.method = ABLATION
                reason = _wait_steps(window, [("ablation sweep",
                                               lambda: doc.store.has_result(ABLATION))],
                                     started)
            if reason is None:
                doc.analysis.method = GRADCAM
                if screenshot:
                    app.processEvents()
                    path = Path(screenshot).expanduser()
                    path.parent.mkdir(parents=True, exist_ok=True)
                    if not window.grab().save(str(path)):
                        reason = f"could not write the screenshot {path}"
            if reason is None:
                reason = too_big
        finally:
            window.close()
            window.deleteLater()
            app.processEvents()
    if reason is not None:
        print(f"segexplorer smoke test failed: {reason}", file=sys.stderr)
        return 1
    return 0


def _window_outside_screen(window, width: int, height: int) -> str | None:
    """Why a window of ``width`` x ``height`` (what it asked for, its frame added) does not
    fit its screen's available area, or None."""
    screen = window.screen()
    if screen is None:
        return None
    area = screen.availableGeometry()
    frame = window.frameGeometry()
    width = max(frame.width(), width + frame.width() - window.width())
    height = max(frame.height(), height + frame.height() - window.height())
    if width <= area.width() and height <= area.height():
        return None
    return (f"the window opens at {width}x{height}, larger than the screen's available area "
            f"of {area.width()}x{area.height()}")


def wait_until(predicate, timeout_s: float) -> bool:
    """Process events until ``predicate()`` is true (scripts and the smoke test)."""
    from PySide6.QtCore import QEventLoop, QTimer

    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        QTimer.singleShot(20, loop.quit)
        loop.exec()
    return True


def _wait_steps(window, steps, started: float) -> str | None:
    status = window.status
    for name, done in steps:
        remaining = SMOKE_TIMEOUT_S - (time.monotonic() - started)
        ok = wait_until(lambda done=done: done() or status.last_error is not None, remaining)
        if status.last_error is not None:
            return f"{name}: {status.last_error}"
        if not ok:
            return f"{name} did not finish within {SMOKE_TIMEOUT_S:.0f} s"
    return None


def missing_qt_plugins() -> list[str]:
    """Qt plugins this platform needs that are not installed (the frozen self-check)."""
    from PySide6.QtCore import QLibraryInfo

    plugins = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))
    wanted = {"linux": ["platforms/*xcb*", "platforms/*wayland*", "platforms/*offscreen*"],
              "win32": ["platforms/qwindows*"],
              "darwin": ["platforms/*cocoa*"]}.get(sys.platform, [])
    return [f"{pattern} under {plugins}" for pattern in wanted + ["imageformats/*jpeg*"]
            if not list(plugins.glob(pattern))]
