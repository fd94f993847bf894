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
   shadow the ones torch needs (``OSError: [WinError 1114] ... c10.dll``). In the bundle
   this already happened earlier, in SegExplorer's PyInstaller runtime hook
   (``packaging/rthooks/pyi_rth_segexplorer.py``), which runs before PyInstaller's own PySide6
   hook loads QtCore; ``bootstrap()`` then has nothing left to do.

Model weights are still looked up where torchvision always looks (``torch.hub.get_dir()``:
``$TORCH_HOME/hub`` or ``~/.cache/torch/hub``), so a bundle and a source checkout share the
same downloaded files; nothing here changes that.

``self_check()`` (``SegExplorer --frozen-self-check``, run by ``packaging/build.sh --smoke``)
exercises what PyInstaller's import scan cannot see and the window's smoke test does not
reach: torchvision's native operators, matplotlib's SVG and PDF backends, the packaged
resources and Qt's platform plugins; it checks that the bundle's torch is the flavour the
build named, and that torch's native libraries were loaded before Qt's (the process's own
list of loaded libraries, in load order). ``self_check_report()`` says what it found: the
flavour, the glibc floor, the build host's libraries the bundle carries and the system
libraries this run loaded from outside the bundle.

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


QT_PACKAGES = ("PySide6", "shiboken6")

# What import_torch_first() found the first time it ran: who called it (the runtime hook or
# bootstrap) and which Qt modules were imported already (none, when it worked).
torch_first: dict[str, object] = {}


def import_torch_first(caller: str = "bootstrap", argv: list[str] | None = None) -> None:
    """Load torch (and its native libraries) before any Qt library is loaded.

    Runs once: from the bundle's runtime hook, before PyInstaller's own PySide6 hook loads
    QtCore, and again (doing nothing) from ``bootstrap()``. Not for a command that needs
    neither torch nor Qt (``--version``, ``--help``): it answers in a fraction of a second
    instead of loading torch (2 s, 660 MB) first.
    """
    if torch_first:
        return
    qt_before = sorted(m for m in sys.modules if m.split(".")[0] in QT_PACKAGES)
    torch_first.update(caller=caller, qt_modules_before=qt_before)
    if qt_before:  # too late to matter; torch is imported later as usual
        return
    if needs_no_torch(sys.argv[1:] if argv is None else argv):
        torch_first.update(skipped="the command needs no torch")
        return
    import torch  # noqa: F401


TORCH_FREE_FLAGS = ("--version", "-h", "--help")


def needs_no_torch(args: list[str]) -> bool:
    """``segexplorer --version``, ``segexplorer --help`` or ``segexplorer CMD --help``:
    argparse answers them and exits before any command runs."""
    if args[:1] and args[0] in TORCH_FREE_FLAGS:
        return True
    return len(args) >= 2 and not args[0].startswith("-") and args[1] in TORCH_FREE_FLAGS


# ------------------------------------------------------------------------- native load order
def loaded_libraries() -> list[str]:
    """The paths of the shared libraries in this process, in the order they were loaded
    ([] where the platform gives no such list)."""
    try:
        if sys.platform.startswith("linux"):
            return _linux_libraries()
        if sys.platform == "darwin":
            return _macos_libraries()
        if sys.platform == "win32":
            return _windows_libraries()
    except (OSError, AttributeError):
        pass
    return []


def _linux_libraries() -> list[str]:
    # dl_iterate_phdr walks the dynamic linker's list, which is in load order.
    import ctypes

    class DlPhdrInfo(ctypes.Structure):
        _fields_ = [("dlpi_addr", ctypes.c_void_p), ("dlpi_name", ctypes.c_char_p),
                    ("dlpi_phdr", ctypes.c_void_p), ("dlpi_phnum", ctypes.c_uint16)]

    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(DlPhdrInfo), ctypes.c_size_t,
                                     ctypes.c_void_p)
    names: list[str] = []

    def visit(info, _size, _data) -> int:
        name = info.contents.dlpi_name
        if name:
            names.append(os.fsdecode(name))
        return 0

    ctypes.CDLL(None).dl_iterate_phdr(callback_type(visit), None)
    return names


def _macos_libraries() -> list[str]:
    import ctypes

    dyld = ctypes.CDLL(None)  # the dyld functions are in libSystem, always loaded
    dyld._dyld_get_image_name.restype = ctypes.c_char_p
    dyld._dyld_get_image_name.argtypes = [ctypes.c_uint32]
    return [os.fsdecode(dyld._dyld_get_image_name(i)) for i in range(dyld._dyld_image_count())]


def _windows_libraries() -> list[str]:
    # EnumProcessModules lists the modules in the order the loader loaded them.
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    process = kernel32.GetCurrentProcess()
    needed = wintypes.DWORD()
    modules = (wintypes.HMODULE * 4096)()
    if not kernel32.K32EnumProcessModules(process, modules, ctypes.sizeof(modules),
                                          ctypes.byref(needed)):
        return []
    count = min(needed.value // ctypes.sizeof(wintypes.HMODULE), len(modules))
    names = []
    buffer = ctypes.create_unicode_buffer(32768)
    for handle in modules[:count]:
        if kernel32.GetModuleFileNameW(wintypes.HMODULE(handle), buffer, len(buffer)):
            names.append(buffer.value)
    return names


def _parts(path: str) -> list[str]:
    return [p for p in path.replace("\\", "/").split("/") if p]


def is_torch_core_library(path: str) -> bool:
    """torch's c10 library (libc10.so, c10.dll, libc10.dylib): loaded with torch itself."""
    name = _parts(path)[-1].lower() if _parts(path) else ""
    return name in ("c10.dll", "libc10.dylib") or name == "libc10.so" \
        or name.startswith("libc10.so.")


def is_qt_library(path: str) -> bool:
    """A library of Qt or of its Python bindings (PySide6, shiboken6), by name or folder."""
    parts = _parts(path)
    if not parts:
        return False
    name = parts[-1].lower()
    folders = {p.lower() for p in parts[:-1]}
    return (name.startswith(("libqt6", "qt6", "libshiboken6", "shiboken6", "libpyside6",
                             "pyside6"))
            or bool(folders & {"pyside6", "shiboken6"}))


def load_order_problems(libraries: list[str], state: dict[str, object] | None = None,
                        frozen: bool | None = None) -> list[str]:
    """Why the load order is wrong ([] when torch's libraries came before Qt's).

    ``libraries``: the process's libraries in load order (``loaded_libraries()``); ``state``:
    what ``import_torch_first()`` recorded; ``frozen``: whether the runtime hook should have run
    (in a bundle). An empty library list (an unknown platform) leaves only the recorded state.
    """
    state = torch_first if state is None else state
    frozen = is_frozen() if frozen is None else frozen
    problems = []
    first_qt = next((i for i, lib in enumerate(libraries) if is_qt_library(lib)), None)
    first_torch = next((i for i, lib in enumerate(libraries) if is_torch_core_library(lib)), None)
    if first_qt is not None and (first_torch is None or first_qt < first_torch):
        torch_where = "is not loaded" if first_torch is None else \
            f"came later ({Path(libraries[first_torch]).name}, #{first_torch})"
        problems.append(f"Qt was loaded before torch: {Path(libraries[first_qt]).name} "
                        f"(#{first_qt}) while torch {torch_where}")
    if frozen:
        if state.get("caller") != "runtime hook":
            problems.append("SegExplorer's runtime hook did not run first (import_torch_first "
                            f"was called by {state.get('caller', 'nobody')})")
        before = list(state.get("qt_modules_before") or [])  # type: ignore[call-overload]
        if before:
            problems.append(f"Qt was imported before the runtime hook: {', '.join(before[:3])}"
                            + (f" and {len(before) - 3} more" if len(before) > 3 else ""))
    return problems


def load_order_summary(libraries: list[str]) -> str:
    """One line: where torch's and Qt's first libraries are in the load order."""
    first_qt = next((lib for lib in libraries if is_qt_library(lib)), None)
    first_torch = next((lib for lib in libraries if is_torch_core_library(lib)), None)
    if not libraries:
        return "load order: not available on this platform"

    def where(lib: str | None) -> str:
        return "not loaded" if lib is None else f"{Path(lib).name} #{libraries.index(lib)}"

    return f"load order: torch {where(first_torch)}, Qt {where(first_qt)} " \
           f"(of {len(libraries)} libraries)"


# ------------------------------------------------------------------------- what the bundle holds
BUNDLE_INFO = "segexplorer-bundle.json"  # written by packaging/segexplorer.spec


def bundle_info() -> dict | None:
    """What the build recorded (flavour, glibc floor, the host libraries copied), or None."""
    import json

    base = bundle_dir()
    if base is None or not (base / BUNDLE_INFO).is_file():
        return None
    return json.loads((base / BUNDLE_INFO).read_text(encoding="utf-8"))


def running_flavour() -> str:
    """``cuda``, ``rocm`` or ``cpu``: what the torch in this process was built for."""
    import torch

    if getattr(torch.version, "hip", None):
        return "rocm"
    return "cuda" if torch.version.cuda else "cpu"


def outside_libraries(libraries: list[str], base: Path | None) -> list[str]:
    """The loaded libraries that are not in the bundle (the system's own), by name."""
    if base is None:
        return []
    root = str(base.resolve().parent)  # the bundle folder: _internal's parent
    out = []
    for lib in libraries:
        if "/" not in lib and "\\" not in lib:  # the vDSO, which is no file
            continue
        try:
            resolved = str(Path(lib).resolve())
        except OSError:
            resolved = lib
        if not resolved.startswith(root + os.sep) and not lib.startswith(root + os.sep):
            out.append(Path(lib).name)
    return out


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

    def flavour() -> None:
        info = bundle_info()
        if info is None:
            assert not is_frozen(), f"{BUNDLE_INFO} is missing from the bundle"
            return
        assert info["flavour"] == running_flavour(), \
            f"built as the {info['flavour']} flavour, but its torch is a {running_flavour()} build"

    def torch_before_qt() -> None:
        problems = load_order_problems(loaded_libraries())
        assert not problems, "; ".join(problems)

    check("torch flavour", flavour)
    check("torchvision operators", torchvision_ops)
    check("torchvision image decoding", torchvision_image_io)
    check("matplotlib figures (PNG, SVG, PDF)", figures)
    check("package resources", package_resources)
    check("model architectures", models)
    check("Qt plugins", qt_plugins)
    check("torch loaded before Qt", torch_before_qt)  # last: Qt is loaded by now
    return problems


def self_check_report() -> list[str]:
    """What the self-check found, one line each (after ``self_check()``); never raises."""
    try:
        return _report_lines()
    except Exception as exc:  # noqa: BLE001 - a report, not a check: say what broke
        return [f"report incomplete: {type(exc).__name__}: {exc}"]


def _report_lines() -> list[str]:
    import platform

    import torch

    lines = []
    info = bundle_info()
    if info is not None:
        floor = info.get("glibc_floor")
        lines.append(f"bundle: SegExplorer {info.get('version')}, {info.get('flavour')} flavour, "
                     f"built with torch {info.get('torch')} by PyInstaller "
                     f"{info.get('pyinstaller')} on {info.get('build_platform')}")
        if floor:
            lines.append(f"glibc floor: {floor['version']} (needed by "
                         f"{', '.join(floor['needed_by'][:3])}"
                         f"{', ...' if len(floor['needed_by']) > 3 else ''})")
        host = info.get("system_libraries", [])
        lines.append(f"build-host libraries in the bundle ({len(host)}): "
                     + (", ".join(lib["name"] for lib in host) or "none"))
    else:
        lines.append("bundle: none (not frozen)")
    try:  # the C library this process runs with (platform.libc_ver() reads the executable)
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        libc = ""
    cuda = torch.version.cuda or "none"
    lines.append(f"this system: {platform.system()} {platform.machine()}"
                 + (f", {libc}" if libc else "")
                 + f"; torch {torch.__version__} (CUDA {cuda}, GPU available: "
                 f"{torch.cuda.is_available()})")
    libraries = loaded_libraries()
    lines.append(load_order_summary(libraries))
    outside = outside_libraries(libraries, bundle_dir())
    if is_frozen():
        lines.append(f"system libraries loaded from outside the bundle ({len(outside)}): "
                     + (", ".join(outside) or "none"))
    return lines


def bootstrap() -> Path | None:
    """Everything the frozen application needs before ``segexplorer.cli.main()``.

    Returns the log file's path when the output streams were redirected, else None.
    """
    import multiprocessing

    multiprocessing.freeze_support()
    log = redirect_missing_streams()
    import_torch_first("bootstrap")  # in a bundle the runtime hook did it already
    return log
