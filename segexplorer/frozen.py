"""Start-up chores for the frozen (PyInstaller) application.

``bootstrap()`` runs first thing in the bundle's entry script (``segexplorer/_entry.py``),
before the command line or Qt is touched:

1. ``multiprocessing.freeze_support()``: a child process started by multiprocessing (torch's
   DataLoader workers, ``spawn``) re-runs the frozen executable; this turns it back into a
   worker instead of a second copy of the application.
2. A windowed build has no console: on Windows ``sys.stdout``/``sys.stderr`` are ``None`` and
   the first ``print`` (or a library's warning) raises. Missing streams are redirected to
   ``segexplorer.log`` in the user's log folder (platformdirs' ``user_log_dir``), with
   faulthandler writing native crashes there too.
3. ``import torch`` before anything imports Qt: on Windows, Qt's DLLs loaded first can
   shadow the ones torch needs (``OSError: [WinError 1114] ... c10.dll``).

Model weights are still looked up where torchvision always looks (``torch.hub.get_dir()``:
``$TORCH_HOME/hub`` or ``~/.cache/torch/hub``), so a bundle and a source checkout share the
same downloaded files; nothing here changes that.

``self_check()`` (``SegExplorer --frozen-self-check``, run by ``packaging/build.sh --smoke``)
exercises what PyInstaller's import scan cannot see and the window's smoke test does not
reach: torchvision's native operators, matplotlib's SVG and PDF backends, the packaged
resources and Qt's platform plugins.

``bootstrap()`` imports no Qt, and calling it outside a bundle is harmless.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "SegExplorer"
LOG_NAME = "segexplorer.log"
LOG_MAX_BYTES = 1_000_000  # a bigger log is moved to segexplorer.log.1 at start-up

_log_file = None  # kept open (and referenced) for the life of the process


def is_frozen() -> bool:
    """True inside a PyInstaller (or similar) bundle."""
    return bool(getattr(sys, "frozen", False))


def bundle_dir() -> Path | None:
    """The folder holding the bundle's Python modules and data (``sys._MEIPASS``)."""
    base = getattr(sys, "_MEIPASS", None)
    return Path(base) if base else None


def log_dir() -> Path:
    """Where a windowed bundle writes its log (created on first use)."""
    from platformdirs import user_log_dir

    return Path(user_log_dir(APP_NAME, appauthor=False))


def log_path() -> Path:
    return log_dir() / LOG_NAME


def redirect_missing_streams() -> Path | None:
    """Point ``sys.stdout``/``sys.stderr`` at the log file where they are ``None``.

    Returns the log file's path, or None when both streams exist (a console build, or a
    start from a terminal) or no log file could be opened (then the streams go to
    ``os.devnull`` so that writes still succeed).
    """
    global _log_file
    if sys.stdout is not None and sys.stderr is not None:
        return None
    file = log_path()
    path: Path | None = file
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        if file.exists() and file.stat().st_size > LOG_MAX_BYTES:
            os.replace(file, file.with_name(LOG_NAME + ".1"))
        stream = open(file, "a", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                      buffering=1)
    except OSError:
        path = None
        stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    _log_file = stream
    if sys.stdout is None:
        sys.stdout = stream
    if sys.stderr is None:
        sys.stderr = stream
    if path is not None:
        import faulthandler
        import time

        stream.write(f"\n===== {APP_NAME} started {time.strftime('%Y-%m-%d %H:%M:%S')} "
                     f"(pid {os.getpid()}) =====\n")
        faulthandler.enable(stream)
    return path


def close_log() -> None:
    """Close the log file that :func:`redirect_missing_streams` opened (tests)."""
    global _log_file
    stream, _log_file = _log_file, None
    if stream is not None:
        stream.close()


def import_torch_first() -> None:
    """Load torch (and its native libraries) before any Qt library is loaded."""
    if "PySide6.QtCore" in sys.modules:  # too late to matter; do not pay for it twice
        return
    import torch  # noqa: F401


SELF_CHECK_FLAG = "--frozen-self-check"


def self_check() -> list[str]:
    """Load each piece that is found at run time by name; return the problems (none: [])."""
    import tempfile
    import warnings
    from importlib import resources

    problems: list[str] = []

    def check(name, fn) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UserWarning)  # torchvision warns, not raises
                fn()
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
            first = str(exc).splitlines()[0] if str(exc) else ""
            problems.append(f"{name}: {type(exc).__name__}: {first}")

    def torchvision_ops() -> None:
        import torch
        import torchvision

        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0]])
        keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
        assert keep.tolist() == [0], keep

    def torchvision_image_io() -> None:
        import torch
        from torchvision.io import decode_jpeg

        data = resources.files("segexplorer") / "resources" / "sample_astronaut.jpg"
        raw = torch.frombuffer(bytearray(data.read_bytes()), dtype=torch.uint8)
        assert decode_jpeg(raw).shape[0] == 3

    def figures() -> None:
        import numpy as np

        from .export.files import FIGURE_FORMATS, save_figure

        rng = np.random.default_rng(0)
        image = rng.random((16, 16, 3))
        attr = rng.standard_normal((16, 16))
        with tempfile.TemporaryDirectory(prefix="segexplorer-check-") as tmp:
            for suffix in FIGURE_FORMATS:
                path = save_figure(Path(tmp) / f"figure{suffix}", attr, image)
                assert Path(path).stat().st_size > 0, path

    def package_resources() -> None:
        base = resources.files("segexplorer").joinpath("resources")
        for name in ("sample_astronaut.jpg", "icons/segexplorer-256.png", "icons/segexplorer.svg"):
            assert base.joinpath(*name.split("/")).is_file(), name

    def models() -> None:
        from .engine.models import ARCHITECTURES, build_untrained

        for arch in ARCHITECTURES.values():
            build_untrained(arch)

    def qt_plugins() -> None:
        from .gui.app import missing_qt_plugins  # Qt stays in the GUI layer

        missing = missing_qt_plugins()
        assert not missing, f"no Qt plugin {', '.join(missing)}"

    check("torchvision operators", torchvision_ops)
    check("torchvision image decoding", torchvision_image_io)
    check("matplotlib figures (PNG, SVG, PDF)", figures)
    check("package resources", package_resources)
    check("model architectures", models)
    check("Qt plugins", qt_plugins)
    return problems


def bootstrap() -> Path | None:
    """Everything the frozen application needs before ``segexplorer.cli.main()``.

    Returns the log file's path when the output streams were redirected, else None.
    """
    import multiprocessing

    multiprocessing.freeze_support()
    log = redirect_missing_streams()
    import_torch_first()
    return log
