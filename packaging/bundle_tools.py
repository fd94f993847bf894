"""Build-time helpers for packaging/segexplorer.spec and packaging/release.py.

Nothing here runs inside the bundle. The spec imports this file (PyInstaller runs the spec
with its own folder importable); tests/test_packaging.py tests it without building.

- ``torch_flavour()``: which bundle the installed torch makes: ``cpu``, ``cuda`` or ``rocm``.
- ``drop_with_dependencies()``: takes files out of PyInstaller's binaries, together with the
  build host's libraries that only they needed (the GTK theme plugin and the GTK stack).
- ``library_origin()``, ``glibc_floor()``: what came from the build host, and the oldest
  glibc the bundle runs on (from the version needs of every ELF file in it).
- ``bundle_metainfo()``, ``bundle_desktop_entry()``: the AppStream file and the menu entry as
  the bundle carries them (its own command, not the pip install's).
- ``development_packages()``: what marks a development venv, which must not be frozen.
- ``wheel_tags()``, ``macos_floor()``: the oldest macOS the installed wheels run on (the
  app's ``LSMinimumSystemVersion``).
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

# PyInstaller's TOC entries: (name inside the bundle, source path, type code)
Entry = tuple[str, str, str]

# Qt's GTK 3 platform-theme plugin is what drags the host's GTK stack (libgtk-3, gdk, pango,
# cairo, atk, gdk-pixbuf, epoxy, ...) into a Linux bundle. Qt's own Fusion style serves
# instead; file dialogs still come from the desktop through the XDG portal plugin.
GTK_THEME_PLUGIN = "PySide6/Qt/plugins/platformthemes/libqgtk3.so"

# Qt's network-information plugins (QNetworkInformation: online or not, which link) come with
# QtNetwork; SegExplorer never asks. The GLib one links the host's libgio and libgobject.
NETWORK_INFORMATION_PLUGINS = "PySide6/Qt/plugins/networkinformation/*"

# Importable in a development venv (scripts/setup.sh installs '.[test]'), never in the bundle's:
# the model-card libraries would be frozen in (segexplorer imports them when a card needs
# them), and the test tools mark a venv that holds more than SegExplorer's dependencies.
DEVELOPMENT_PACKAGES = ("segmentation_models_pytorch", "transformers", "ray", "pytest")

# Files that only a CUDA (or ROCm) build of torch has: a CPU bundle must hold none of them.
GPU_LIBRARY_PATTERNS = (
    "nvidia/*", "*/nvidia/*", "libcudart*", "*/libcudart*", "libcublas*", "*/libcublas*",
    "libcudnn*", "*/libcudnn*", "libnccl*", "*/libnccl*", "*libtorch_cuda*", "*libc10_cuda*",
    "*libtorch_nvshmem*", "*libamdhip64*", "*libhiprtc*", "*libtorch_hip*", "*libc10_hip*",
    "cudart64_*.dll", "*/cudart64_*.dll", "cublas64_*.dll", "*/cublas64_*.dll",
    "cudnn*.dll", "*/cudnn*.dll", "*torch_cuda*.dll", "*c10_cuda*.dll",
)


def torch_flavour() -> str:
    """``cuda``, ``rocm`` or ``cpu``: what the installed torch was built for."""
    import torch

    if getattr(torch.version, "hip", None):
        return "rocm"
    if torch.version.cuda:
        return "cuda"
    return "cpu"


def gpu_files(names: Iterable[str]) -> list[str]:
    """The names (bundle-relative, ``/``-separated) that belong to a GPU build of torch."""
    found = []
    for name in names:
        posix = name.replace("\\", "/")
        if any(fnmatch.fnmatch(posix, pattern) for pattern in GPU_LIBRARY_PATTERNS):
            found.append(name)
    return found


# ------------------------------------------------------------------------------ ELF files
def _elf(path: str | os.PathLike[str]):
    """An open ``ELFFile`` or None (not an ELF file, or pyelftools missing)."""
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
    except ImportError:
        return None
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the caller through .stream
    except OSError:
        return None
    try:
        if stream.read(4) != b"\x7fELF":
            stream.close()
            return None
        stream.seek(0)
        return ELFFile(stream)
    except ELFError:
        stream.close()
        return None


def elf_needed(path: str | os.PathLike[str]) -> list[str]:
    """The DT_NEEDED entries (sonames) of an ELF file; [] for anything else."""
    elf = _elf(path)
    if elf is None:
        return []
    try:
        from elftools.elf.dynamic import DynamicSection

        return [tag.needed for section in elf.iter_sections()
                if isinstance(section, DynamicSection)
                for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
    finally:
        elf.stream.close()


def elf_glibc_needs(path: str | os.PathLike[str]) -> set[tuple[int, ...]]:
    """The ``GLIBC_x.y`` symbol versions an ELF file needs, as tuples: {(2, 34), ...}."""
    elf = _elf(path)
    if elf is None:
        return set()
    try:
        from elftools.elf.gnuversions import GNUVerNeedSection

        versions: set[tuple[int, ...]] = set()
        for section in elf.iter_sections():
            if not isinstance(section, GNUVerNeedSection):
                continue
            for verneed, auxiliaries in section.iter_versions():
                if not verneed.name.startswith("libc.so"):
                    continue
                for aux in auxiliaries:
                    match = re.fullmatch(r"GLIBC_(\d+(?:\.\d+)+)", aux.name)
                    if match:
                        versions.add(tuple(int(p) for p in match.group(1).split(".")))
        return versions
    finally:
        elf.stream.close()


def glibc_floor(paths: Iterable[str | os.PathLike[str]]) -> tuple[str, list[str]] | None:
    """The newest glibc version any of the files needs, and the files that need it.

    None when none of them is an ELF file that names glibc versions (Windows, macOS).
    """
    best: tuple[int, ...] | None = None
    who: list[str] = []
    for path in paths:
        needs = elf_glibc_needs(path)
        if not needs:
            continue
        top = max(needs)
        if best is None or top > best:
            best, who = top, [str(path)]
        elif top == best:
            who.append(str(path))
    if best is None:
        return None
    return ".".join(map(str, best)), who


# ------------------------------------------------------------------------------ where from
@functools.lru_cache(maxsize=1)
def _site_dirs() -> tuple[Path, ...]:
    dirs = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    import site

    dirs.update(getattr(site, "getsitepackages", list)())
    return tuple(Path(d).resolve() for d in dirs if d)


def library_origin(source: str, site_dirs: list[Path] | None = None) -> str:
    """Where a collected file came from: ``wheel`` (site-packages), ``python`` (the
    interpreter and its standard library) or ``system`` (the build host's libraries)."""
    path = Path(source).resolve()
    for base in site_dirs if site_dirs is not None else list(_site_dirs()):
        if path.is_relative_to(base):
            return "wheel"
    if path.name.startswith("libpython"):
        return "python"
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    platstdlib = Path(sysconfig.get_paths()["platstdlib"]).resolve()
    if path.is_relative_to(stdlib) or path.is_relative_to(platstdlib):
        return "python"
    if sys.platform == "win32" and path.is_relative_to(Path(sys.base_prefix).resolve()):
        return "python"  # python311.dll, DLLs\*.pyd, vcruntime140.dll beside python.exe
    return "system"


def system_libraries(binaries: Iterable[Entry],
                     origin: Callable[[str], str] = library_origin) -> list[Entry]:
    """The entries that were copied from the build host's own libraries."""
    return [entry for entry in binaries if origin(entry[1]) == "system"]


# ------------------------------------------------------------------------------ dropping
def _closure(start: Iterable[str], needed: Callable[[str], list[str]],
             by_name: dict[str, Entry]) -> set[str]:
    """Names (basenames) of the host libraries reachable from the files ``start``."""
    seen: set[str] = set()
    todo = [name for source in start for name in needed(source)]
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(needed(by_name[name][1]))
    return seen


def drop_with_dependencies(
    binaries: list[Entry],
    patterns: Iterable[str],
    needed: Callable[[str], list[str]] = elf_needed,
    origin: Callable[[str], str] = library_origin,
) -> tuple[list[Entry], list[Entry]]:
    """Remove the entries whose bundle name matches a pattern, and the host libraries that
    only they needed (linked, directly or not). Returns (kept, dropped).

    A host library that anything else kept links to stays; so does one that nothing links
    to (PyInstaller collected it for another reason, such as a ctypes lookup).
    """
    patterns = list(patterns)

    def matches(entry: Entry) -> bool:
        name = entry[0].replace("\\", "/")
        return any(fnmatch.fnmatch(name, p) for p in patterns)

    removed = [e for e in binaries if matches(e)]
    if not removed:
        return list(binaries), []
    rest = [e for e in binaries if not matches(e)]
    host = {PurePosixPath(e[0].replace("\\", "/")).name: e for e in rest if origin(e[1]) == "system"}
    roots = [e[1] for e in rest if PurePosixPath(e[0].replace("\\", "/")).name not in host]
    still_needed = _closure(roots, needed, host)
    only_theirs = _closure([e[1] for e in removed], needed, host) - still_needed
    dropped = removed + [e for e in rest
                         if PurePosixPath(e[0].replace("\\", "/")).name in only_theirs]
    kept = [e for e in rest if PurePosixPath(e[0].replace("\\", "/")).name not in only_theirs]
    return kept, dropped


# ------------------------------------------------------------------------------ AppStream
def bundle_metainfo(text: str, binaries: Iterable[str]) -> str:
    """The AppStream file with its ``<binary>`` entries replaced by ``binaries`` (the
    commands the bundle puts on PATH), everything else as written."""
    lines = text.splitlines(keepends=True)
    indices = [i for i, line in enumerate(lines) if re.match(r"\s*<binary>[^<]*</binary>\s*$", line)]
    if not indices:
        raise ValueError("the metainfo file has no <binary> entries to replace")
    indent = re.match(r"\s*", lines[indices[0]]).group(0)
    new = [f"{indent}<binary>{name}</binary>\n" for name in binaries]
    first = indices[0]
    kept = [line for i, line in enumerate(lines) if i not in indices]
    return "".join(kept[:first] + new + kept[first:])


# ------------------------------------------------------------------------------ desktop entry
def bundle_desktop_entry(text: str, command: str) -> str:
    """The desktop entry with ``Exec`` and ``TryExec`` naming ``command`` (the command the
    bundle puts on PATH), everything else as written.

    ``install-desktop-entry.sh`` rewrites both to the unpacked folder's absolute path; this is
    what the folder carries before that, and what a packager who links ``command`` into PATH
    can install as it is.
    """
    lines = text.splitlines(keepends=True)
    keys = [re.match(r"(Exec|TryExec)=", line) for line in lines]
    if not any(m and m.group(1) == "Exec" for m in keys):
        raise ValueError("the desktop entry has no Exec= line to replace")
    out = []
    for line, match in zip(lines, keys):
        if match is None:
            out.append(line)
        elif match.group(1) == "Exec":
            args = line.rstrip("\r\n").split("=", 1)[1].split()[1:]  # the field codes: %f
            out.append(f"Exec={' '.join([command, *args])}\n")
        else:
            out.append(f"TryExec={command}\n")
    return "".join(out)


# ------------------------------------------------------------------------------ build venv
def development_packages(find_spec: Callable[[str], object] | None = None) -> list[str]:
    """The packages of ``DEVELOPMENT_PACKAGES`` this environment can import."""
    if find_spec is None:
        import importlib.util

        find_spec = importlib.util.find_spec
    return [name for name in DEVELOPMENT_PACKAGES if find_spec(name) is not None]


# ------------------------------------------------------------------------------ macOS floor
MACOS_ARM64_FIRST = (11, 0)  # the first macOS on Apple silicon


def wheel_tags() -> list[tuple[str, list[str]]]:
    """(distribution name, its wheel tags) for every installed distribution that has them."""
    from importlib import metadata

    found = []
    for dist in metadata.distributions():
        text = dist.read_text("WHEEL") or ""
        tags = [line.split(":", 1)[1].strip() for line in text.splitlines()
                if line.startswith("Tag:")]
        if tags:
            found.append((dist.metadata["Name"], tags))
    return found


def macos_floor(wheels: Iterable[tuple[str, Iterable[str]]]) -> tuple[str, list[str]] | None:
    """The oldest macOS every wheel runs on (``"14.0"``), and the wheels that set it.

    A wheel runs from the oldest macOS among its tags (``cp311-cp311-macosx_14_0_arm64``:
    14.0); the bundle runs where all of them do, so the newest of those, and never below the
    first macOS on Apple silicon (then no wheel is named). None when no wheel is built for
    macOS (Linux, Windows).
    """
    best: tuple[int, ...] | None = None
    who: list[str] = []
    for name, tags in wheels:
        versions = [(int(m.group(1)), int(m.group(2)))
                    for tag in tags for platform in tag.split("-")[-1].split(".")
                    if (m := re.fullmatch(r"macosx_(\d+)_(\d+)_\w+", platform))]
        if not versions:
            continue
        need = min(versions)
        if best is None or need > best:
            best, who = need, [name]
        elif need == best:
            who.append(name)
    if best is None:
        return None
    if best < MACOS_ARM64_FIRST:
        best, who = MACOS_ARM64_FIRST, []
    return ".".join(map(str, best)), sorted(who)
