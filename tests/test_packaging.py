"""Packaging checks that run in seconds: the spec, the build and release scripts, the icons,
the desktop entry, the AppStream metadata, the frozen-app bootstrap and its load-order check.
Nothing here builds a bundle: ``packaging/build.sh --smoke`` does (see docs/packaging.md)."""

from __future__ import annotations

import ast
import configparser
import contextlib
import hashlib
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
APP_ID = "io.github.segexplorer.SegExplorer"
SPEC = ROOT / "packaging" / "segexplorer.spec"
DESKTOP = ROOT / "resources" / f"{APP_ID}.desktop"
METAINFO = ROOT / "resources" / f"{APP_ID}.metainfo.xml"
HOOK = ROOT / "packaging" / "rthooks" / "pyi_rth_segexplorer.py"
ENV_HOOK = ROOT / "packaging" / "rthooks" / "pyi_rth_segexplorer_env.py"
DOCS = ROOT / "docs" / "packaging.md"
BUILD_SH = ROOT / "packaging" / "build.sh"


def _load(name: str):
    """A module from packaging/ (not a package: the spec imports it by path too)."""
    spec = importlib.util.spec_from_file_location(f"_packaging_{name}",
                                                  ROOT / "packaging" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bundle_tools = _load("bundle_tools")
release = _load("release")


# ------------------------------------------------------------------------- the spec, the script
def _spec_tree() -> ast.Module:
    return ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))


def _calls(tree: ast.Module, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name) and node.func.id == name]


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    raise AssertionError(f"{name}= missing")


def _assignments(tree: ast.Module) -> dict[str, ast.expr]:
    return {node.targets[0].id: node.value for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


def test_spec_builds_one_folder_with_the_windowed_launcher_and_the_command_line():
    tree = _spec_tree()
    gui, cli = _calls(tree, "EXE")  # the second one only on Windows (see below)
    assert _keyword(gui, "name").id == "APP_NAME"
    assert ast.literal_eval(_keyword(gui, "console")) is False
    assert ast.literal_eval(_keyword(cli, "name")) == "segexplorer-cli"
    assert ast.literal_eval(_keyword(cli, "console")) is True  # prints where it was started
    for exe in (gui, cli):
        assert ast.literal_eval(_keyword(exe, "exclude_binaries")) is True  # one folder
        assert ast.literal_eval(_keyword(exe, "upx")) is False
        assert [ast.unparse(arg) for arg in exe.args[:2]] == ["pyz", "a.scripts"]  # one program
    (collect,) = _calls(tree, "COLLECT")
    assert ast.unparse(collect.args[0]) == "*executables"
    text = SPEC.read_text(encoding="utf-8")
    assert 'APP_NAME = "SegExplorer"' in text
    assert "executables = [exe]  # first" in text  # the launcher first: macOS's app executable
    assert 'if sys.platform == "win32":\n    # The same program built for the console' in text
    # The command line by its documented name: a script beside the launcher on Linux, a
    # console executable renamed segexplorer.com on Windows (.com runs before .exe).
    assert 'CLI_NAME = "segexplorer"  #' in text and 'CLI_NAME = "segexplorer.com"  #' in text
    assert 'os.replace(_folder / "segexplorer-cli.exe", _folder / CLI_NAME)' in text
    assert 'shutil.copy2(ROOT / "packaging" / "linux" / CLI_NAME, _dest)' in text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux command-line script")
def test_the_linux_command_line_runs_the_launcher_also_through_a_link(tmp_path):
    bundle = tmp_path / "Seg Explorer"
    bundle.mkdir()
    script = shutil.copy(ROOT / "packaging" / "linux" / "segexplorer", bundle)
    assert os.stat(script).st_mode & 0o111
    launcher = bundle / "SegExplorer"
    launcher.write_text('#!/bin/sh\nprintf "%s|" "$0" "$@"\n')
    launcher.chmod(0o755)
    link = tmp_path / "bin" / "segexplorer"
    link.parent.mkdir()
    link.symlink_to(script)
    for command in (script, link):
        run = subprocess.run([str(command), "explain", "a photo.png"], capture_output=True,
                             text=True, check=True)
        assert run.stdout == f"{launcher}|explain|a photo.png|"


def test_spec_includes_our_runtime_hook_which_imports_torch_first():
    tree = _spec_tree()
    (analysis,) = _calls(tree, "Analysis")
    assert _keyword(analysis, "runtime_hooks").id == "runtime_hooks"
    hooks = ast.unparse(_assignments(tree)["runtime_hooks"])
    assert hooks == ("[str(ROOT / 'packaging' / 'rthooks' / 'pyi_rth_segexplorer.py'), "
                     "str(ROOT / 'packaging' / 'rthooks' / 'pyi_rth_segexplorer_env.py')]")
    assert HOOK.is_file()
    hook = ast.parse(HOOK.read_text(encoding="utf-8"))
    statements = [node for node in hook.body if not isinstance(node, ast.Expr)
                  or not isinstance(node.value, ast.Constant)]
    assert ast.unparse(statements[0]) == "from segexplorer.frozen import import_torch_first"
    assert ast.unparse(statements[1]) == "import_torch_first('runtime hook')"
    assert len(statements) == 2  # nothing else runs before PyInstaller's own hooks


def test_spec_leaves_out_the_gtk_theme_stack_and_records_what_it_copied():
    tree = _spec_tree()
    text = SPEC.read_text(encoding="utf-8")
    patterns = ast.unparse(_assignments(tree)["drop_patterns"])
    assert patterns == ("[bundle_tools.GTK_THEME_PLUGIN, bundle_tools.NETWORK_INFORMATION_PLUGINS] "
                        "if sys.platform.startswith('linux') else []")
    assert "a.binaries, _dropped = bundle_tools.drop_with_dependencies(list(a.binaries), " \
           "drop_patterns)" in text
    assert bundle_tools.GTK_THEME_PLUGIN == "PySide6/Qt/plugins/platformthemes/libqgtk3.so"
    # what came from the build host goes into the build log and the bundle's record
    assert "bundle_tools.system_libraries(a.binaries)" in text
    assert "bundle_tools.glibc_floor(" in text
    assert "a.datas.append((BUNDLE_INFO," in text
    from segexplorer import frozen

    assert 'BUNDLE_INFO = "segexplorer-bundle.json"' in text
    assert frozen.BUNDLE_INFO == "segexplorer-bundle.json"


def test_spec_refuses_a_flavour_its_torch_is_not():
    text = SPEC.read_text(encoding="utf-8")
    assert "FLAVOUR = bundle_tools.torch_flavour()" in text
    assert 'os.environ.get("SEGEXPLORER_FLAVOUR", "")' in text
    assert 'if FLAVOUR == "cpu" and _gpu:' in text


def test_spec_entry_script_and_icons_exist():
    text = SPEC.read_text(encoding="utf-8")
    assert '"segexplorer" / "_entry.py"' in text
    assert (ROOT / "segexplorer" / "_entry.py").is_file()
    for name in ("segexplorer.ico", "segexplorer.icns"):
        assert f'"{name}"' in text
        assert (ROOT / "resources" / name).is_file()


def test_spec_excludes_other_qt_bindings_and_tkinter_and_names_matplotlib_backends():
    tree = _spec_tree()
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            with contextlib.suppress(ValueError):
                values[node.targets[0].id] = ast.literal_eval(node.value)
    assert {"PyQt5", "PyQt6", "PySide2", "tkinter", "IPython"} <= set(values["excludes"])
    assert not any(name.startswith(("PySide6", "torch", "captum", "matplotlib"))
                   and name != "matplotlib.backends.backend_tkagg"
                   for name in values["excludes"])
    backends = {b.lower() for b in values["hooksconfig"]["matplotlib"]["backends"]}
    assert {"agg", "svg", "pdf"} <= backends


def test_spec_backends_are_the_ones_figure_export_offers():
    from segexplorer.export.files import FIGURE_FORMATS

    text = SPEC.read_text(encoding="utf-8")
    for suffix in FIGURE_FORMATS:
        backend = {"png": "Agg"}.get(suffix[1:], suffix[1:].upper())
        assert f'"{backend}"' in text


@pytest.mark.skipif(sys.platform == "win32", reason="needs bash")
def test_build_script_is_valid_bash_and_executable():
    script = ROOT / "packaging" / "build.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert script.stat().st_mode & 0o111
    text = script.read_text(encoding="utf-8")
    assert "--noconfirm --clean" in text and "packaging/segexplorer.spec" in text
    assert "--smoke-test --screenshot" in text and "--frozen-self-check" in text
    assert "packaging/release.py --flavour" in text


@pytest.mark.skipif(sys.platform == "win32", reason="needs bash")
def test_build_script_refuses_a_flavour_the_environment_does_not_have():
    import torch

    other = "cpu" if torch.version.cuda or getattr(torch.version, "hip", None) else "cuda"
    env = {**os.environ, "PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(["bash", str(ROOT / "packaging" / "build.sh"), "--dry-run",
                          "--flavour", other], env=env, capture_output=True, text=True)
    assert run.returncode == 1
    assert f"refusing: the {other} flavour was asked for" in run.stderr
    wrong = subprocess.run(["bash", str(ROOT / "packaging" / "build.sh"), "--flavour", "gpu"],
                           env=env, capture_output=True, text=True)
    assert wrong.returncode == 2 and "unknown flavour 'gpu'" in wrong.stderr


def test_torch_flavour_is_what_torch_was_built_for():
    import torch

    flavour = bundle_tools.torch_flavour()
    assert flavour == ("rocm" if getattr(torch.version, "hip", None)
                       else "cuda" if torch.version.cuda else "cpu")
    from segexplorer import frozen

    assert frozen.running_flavour() == flavour


def test_gpu_files_are_recognised_by_name():
    names = ["nvidia/cudnn/lib/libcudnn.so.9", "torch/lib/libtorch_cuda.so",
             "torch/lib/libc10_cuda.so", "torch/lib/libtorch_cpu.so", "torch/lib/libc10.so",
             "torch/lib/libgomp.so.1", "torch/lib/c10_cuda.dll", "torch/lib/cudnn64_9.dll",
             "torch/lib/libamdhip64.so", "PySide6/Qt/lib/libQt6Core.so.6", "torch\\lib\\torch_cuda.dll"]
    assert bundle_tools.gpu_files(names) == [
        "nvidia/cudnn/lib/libcudnn.so.9", "torch/lib/libtorch_cuda.so",
        "torch/lib/libc10_cuda.so", "torch/lib/c10_cuda.dll", "torch/lib/cudnn64_9.dll",
        "torch/lib/libamdhip64.so", "torch\\lib\\torch_cuda.dll"]


# ------------------------------------------------------------------------- build-host libraries
def test_dropping_the_gtk_plugin_takes_only_the_host_libraries_it_alone_needed():
    plugin = bundle_tools.GTK_THEME_PLUGIN
    binaries = [
        (plugin, "/site/PySide6/Qt/plugins/platformthemes/libqgtk3.so", "BINARY"),
        ("PySide6/Qt/lib/libQt6Gui.so.6", "/site/PySide6/Qt/lib/libQt6Gui.so.6", "BINARY"),
        ("libgtk-3.so.0", "/usr/lib/libgtk-3.so.0", "BINARY"),
        ("libpango-1.0.so.0", "/usr/lib/libpango-1.0.so.0", "BINARY"),
        ("libfontconfig.so.1", "/usr/lib/libfontconfig.so.1", "BINARY"),
        ("libexpat.so.1", "/usr/lib/libexpat.so.1", "BINARY"),
        ("libcrypto.so.3", "/usr/lib/libcrypto.so.3", "BINARY"),  # a ctypes find: no linker
    ]
    needed = {
        "/site/PySide6/Qt/plugins/platformthemes/libqgtk3.so": ["libgtk-3.so.0", "libQt6Gui.so.6"],
        "/site/PySide6/Qt/lib/libQt6Gui.so.6": ["libfontconfig.so.1", "libc.so.6"],
        "/usr/lib/libgtk-3.so.0": ["libpango-1.0.so.0", "libfontconfig.so.1"],
        "/usr/lib/libpango-1.0.so.0": ["libfontconfig.so.1"],
        "/usr/lib/libfontconfig.so.1": ["libexpat.so.1"],
    }
    kept, dropped = bundle_tools.drop_with_dependencies(
        binaries, [plugin], needed=lambda path: needed.get(path, []),
        origin=lambda path: "system" if path.startswith("/usr/") else "wheel")
    assert [d for d, _, _ in dropped] == [plugin, "libgtk-3.so.0", "libpango-1.0.so.0"]
    assert [d for d, _, _ in kept] == ["PySide6/Qt/lib/libQt6Gui.so.6", "libfontconfig.so.1",
                                       "libexpat.so.1", "libcrypto.so.3"]
    # no match (Windows, macOS): nothing changes
    assert bundle_tools.drop_with_dependencies(kept, [plugin]) == (kept, [])


def test_library_origin_tells_wheels_python_and_the_host_apart(tmp_path):
    import sysconfig

    import torch

    site = [Path(torch.__file__).resolve().parent.parent]
    torch_lib = next((Path(torch.__file__).parent / "lib").glob("libc10*"))
    assert bundle_tools.library_origin(str(torch_lib), site) == "wheel"
    stdlib = Path(sysconfig.get_paths()["stdlib"]) / "os.py"
    assert bundle_tools.library_origin(str(stdlib), site) == "python"
    assert bundle_tools.library_origin(str(tmp_path / "libgtk-3.so.0"), site) == "system"
    entries = [("a", str(torch_lib), "BINARY"), ("b", str(tmp_path / "libgtk-3.so.0"), "BINARY")]
    assert bundle_tools.system_libraries(entries, lambda p: bundle_tools.library_origin(p, site)) \
        == [entries[1]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF files")
def test_glibc_floor_and_needed_libraries_are_read_from_elf_files(tmp_path):
    pytest.importorskip("elftools")
    import torch

    c10 = next((Path(torch.__file__).parent / "lib").glob("libc10.so*"))
    assert "libstdc++.so.6" in bundle_tools.elf_needed(c10)
    needs = bundle_tools.elf_glibc_needs(c10)
    assert needs and all(v[0] == 2 for v in needs)
    text = tmp_path / "notes.txt"
    text.write_text("GLIBC_2.99 is only text here")
    assert bundle_tools.elf_needed(text) == [] and bundle_tools.elf_glibc_needs(text) == set()
    floor, who = bundle_tools.glibc_floor([c10, text])
    assert floor == ".".join(map(str, max(needs))) and who == [str(c10)]
    # manylinux_2_28 wheel: torch's own libraries need nothing newer than glibc 2.28
    assert max(needs) <= (2, 28)
    assert bundle_tools.glibc_floor([text]) is None


# ------------------------------------------------------------------------- release files
def _fake_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "SegExplorer"
    (bundle / "_internal").mkdir(parents=True)
    exe = bundle / "SegExplorer"
    exe.write_bytes(b"\x7fELF" + os.urandom(30_000))  # incompressible: the archive is big
    exe.chmod(0o755)
    (bundle / "_internal" / "libfoo.so.1").write_bytes(os.urandom(20_000))
    (bundle / "_internal" / "libfoo.so").symlink_to("libfoo.so.1")
    return bundle


@pytest.mark.skipif(sys.platform == "win32", reason="links and modes in a tar")
def test_release_splits_a_big_archive_and_one_line_joins_it_again(tmp_path):
    bundle = _fake_bundle(tmp_path)
    out = tmp_path / "release"
    info = release.make_release(bundle, out, "9.9", "cuda", part_size=20_000,
                                tag="linux-x86_64")
    name = "SegExplorer-9.9-linux-x86_64-cuda"
    assert info["archive"] == f"{name}.tar.gz"
    parts = [out / p for p, _ in info["parts"]]
    assert [p.name for p in parts] == [f"{name}.tar.gz.{i:03d}" for i in range(1, len(parts) + 1)]
    assert len(parts) >= 3 and all(p.stat().st_size <= 20_000 for p in parts)
    assert not (out / info["archive"]).exists()  # only the parts are release files
    assert info["join"] == f"cat {' '.join(p.name for p in parts)} > {name}.tar.gz"
    subprocess.run(info["join"], shell=True, cwd=out, check=True)
    joined = out / info["archive"]
    assert hashlib.sha256(joined.read_bytes()).hexdigest() == info["sha256"]
    # the checksum file: every part and the joined archive, in sha256sum's format
    lines = (out / f"{name}.sha256").read_text().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in lines)
    assert set(listed) == {p.name for p in parts} | {joined.name}
    for file_name, digest in listed.items():
        assert hashlib.sha256((out / file_name).read_bytes()).hexdigest() == digest
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--quiet", "-c", f"{name}.sha256"], cwd=out, check=True)
    with tarfile.open(joined) as tar:
        options = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}  # 3.10.12+
        tar.extractall(tmp_path / "unpacked", **options)
    unpacked = tmp_path / "unpacked" / "SegExplorer"
    assert (unpacked / "SegExplorer").stat().st_mode & 0o111  # still executable
    assert os.readlink(unpacked / "_internal" / "libfoo.so") == "libfoo.so.1"
    assert (unpacked / "SegExplorer").read_bytes() == (bundle / "SegExplorer").read_bytes()


def test_release_keeps_a_small_archive_whole(tmp_path):
    bundle = tmp_path / "SegExplorer"
    bundle.mkdir()
    (bundle / "SegExplorer.exe").write_bytes(b"MZ" + b"0" * 1000)
    info = release.make_release(bundle, tmp_path / "out", "1.0", "cpu", tag="windows-x86_64")
    assert info["parts"] == [("SegExplorer-1.0-windows-x86_64-cpu.zip",
                              (tmp_path / "out" / info["archive"]).stat().st_size)]
    assert info["join"] is None
    line = (tmp_path / "out" / "SegExplorer-1.0-windows-x86_64-cpu.sha256").read_text()
    assert line == f"{info['sha256']}  SegExplorer-1.0-windows-x86_64-cpu.zip\n"
    assert release.join_command([Path("a.zip.001"), Path("a.zip.002")], "a.zip", windows=True) \
        == "copy /b a.zip.001+a.zip.002 a.zip"


def test_release_names_sizes_and_platforms():
    assert release.DEFAULT_PART_SIZE < 2 * 1024**3
    assert release.parse_size("1900M") == 1900 * 1024**2
    assert release.parse_size("1.5G") == int(1.5 * 1024**3)
    assert release.parse_size("4096") == 4096
    assert release.platform_tag("linux", "x86_64") == "linux-x86_64"
    assert release.platform_tag("linux", "aarch64") == "linux-aarch64"
    assert release.platform_tag("win32", "AMD64") == "windows-x86_64"
    assert release.platform_tag("darwin", "arm64") == "macos-arm64"
    assert release.release_name("0.1.0", "cpu", "linux-x86_64") == \
        "SegExplorer-0.1.0-linux-x86_64-cpu"
    from segexplorer import __version__

    assert release.project_version(ROOT) == __version__


# ------------------------------------------------------------------------- resources and icons
def test_sample_image_and_icons_are_package_resources():
    base = resources.files("segexplorer").joinpath("resources")
    assert base.joinpath("sample_astronaut.jpg").is_file()
    icons = base.joinpath("icons")
    assert icons.joinpath("segexplorer.svg").is_file()
    for size in (16, 24, 32, 48, 64, 128, 256):
        ref = icons.joinpath(f"segexplorer-{size}.png")
        with Image.open(io.BytesIO(ref.read_bytes())) as image:
            assert image.size == (size, size)
            assert image.mode == "RGBA"


def test_icon_pngs_have_every_size_and_a_transparent_corner():
    hicolor = ROOT / "resources" / "icons" / "hicolor"
    for size in (16, 22, 24, 32, 48, 64, 128, 256, 512):
        with Image.open(hicolor / f"{size}x{size}" / "apps" / f"{APP_ID}.png") as image:
            assert image.size == (size, size)
            assert image.mode == "RGBA"
            assert image.getpixel((0, 0))[3] == 0  # rounded tile: the corner is transparent
            assert image.getpixel((size // 2, size // 2))[3] == 255
    assert (hicolor / "scalable" / "apps" / f"{APP_ID}.svg").read_bytes() == \
        (ROOT / "resources" / "segexplorer.svg").read_bytes()


def test_svg_source_is_valid_xml_with_a_square_viewbox():
    root = ET.parse(ROOT / "resources" / "segexplorer.svg").getroot()
    assert root.tag.endswith("svg")
    assert root.get("viewBox") == "0 0 256 256"


def test_ico_and_icns_hold_the_usual_sizes():
    with Image.open(ROOT / "resources" / "segexplorer.ico") as ico:
        sizes = set(ico.info["sizes"])
    assert {(16, 16), (32, 32), (48, 48), (256, 256)} <= sizes
    with Image.open(ROOT / "resources" / "segexplorer.icns") as icns:
        assert icns.format == "ICNS"
        assert {(16, 16, 2), (128, 128, 1), (256, 256, 1), (512, 512, 2)} <= set(icns.info["sizes"])


# ------------------------------------------------------------------------- Linux desktop files
def _desktop_entry() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(DESKTOP.read_text(encoding="utf-8"))
    assert parser.sections() == ["Desktop Entry"]
    return parser["Desktop Entry"]


def test_desktop_entry_is_well_formed():
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Name"] == "SegExplorer"
    assert entry["Exec"] == "segexplorer-gui %f"
    assert entry["Icon"] == APP_ID
    assert entry["Terminal"] == "false"
    mimes = entry["MimeType"].rstrip(";").split(";")
    assert {"image/png", "image/jpeg"} <= set(mimes)
    for key in ("Categories", "Keywords", "MimeType"):  # lists end with ';'
        assert entry[key].endswith(";")
    for key, value in entry.items():
        assert value == value.strip() and value, key


def test_desktop_entry_exec_is_a_declared_gui_script():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    program = _desktop_entry()["Exec"].split()[0]
    assert program in project["gui-scripts"]
    assert _desktop_entry()["TryExec"] == program


def test_metainfo_matches_desktop_entry_and_project():
    root = ET.parse(METAINFO).getroot()
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.find("launchable").text == DESKTOP.name
    assert root.findtext("project_license") == "BSD-3-Clause"
    assert root.findtext("metadata_license") == "CC0-1.0"
    from segexplorer import __version__

    versions = [r.get("version") for r in root.iter("release")]
    assert __version__ in versions
    binaries = {b.text for b in root.iter("binary")}
    assert binaries == {"segexplorer", "segexplorer-gui"}  # what pip installs
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert binaries == set(project["scripts"]) | set(project["gui-scripts"])


def test_the_bundles_metainfo_names_the_command_the_bundle_has():
    text = METAINFO.read_text(encoding="utf-8")
    bundled = bundle_tools.bundle_metainfo(text, ["segexplorer"])
    root = ET.fromstring(bundled)
    assert [b.text for b in root.iter("binary")] == ["segexplorer"]
    original = ET.fromstring(text)
    assert [m.text for m in root.iter("mediatype")] == [m.text for m in original.iter("mediatype")]
    assert root.findtext("id") == APP_ID and root.find("launchable").text == DESKTOP.name
    # the spec writes the bundle's copy with the command line's name on this platform
    spec = SPEC.read_text(encoding="utf-8")
    assert "bundle_tools.bundle_metainfo(" in spec and "[CLI_NAME])" in spec
    with pytest.raises(ValueError):
        bundle_tools.bundle_metainfo("<component/>", ["x"])


# ------------------------------------------------------------------------- the frozen bootstrap
def test_bootstrap_outside_a_bundle_changes_nothing(monkeypatch):
    from segexplorer import frozen

    stdout, stderr = sys.stdout, sys.stderr
    assert frozen.is_frozen() is False
    assert frozen.bootstrap() is None
    assert sys.stdout is stdout and sys.stderr is stderr
    assert "torch" in sys.modules


def test_missing_streams_go_to_the_log_file(monkeypatch, tmp_path):
    from segexplorer import frozen

    monkeypatch.setattr(frozen, "log_dir", lambda: tmp_path / "logs")
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    import faulthandler

    try:
        path = frozen.redirect_missing_streams()
        assert path == tmp_path / "logs" / frozen.LOG_NAME
        print("hello from a windowed app")
        sys.stderr.write("a warning\n")
    finally:
        faulthandler.disable()
        frozen.close_log()
    text = path.read_text(encoding="utf-8")
    assert "SegExplorer started" in text
    assert "hello from a windowed app\n" in text and "a warning\n" in text


def test_a_big_log_is_rotated(monkeypatch, tmp_path):
    from segexplorer import frozen

    log = tmp_path / frozen.LOG_NAME
    log.write_text("x" * (frozen.LOG_MAX_BYTES + 1))
    monkeypatch.setattr(frozen, "log_dir", lambda: tmp_path)
    monkeypatch.setattr(sys, "stderr", None)
    stdout = sys.stdout
    import faulthandler

    try:
        frozen.redirect_missing_streams()
    finally:
        faulthandler.disable()
        frozen.close_log()
    assert sys.stdout is stdout  # only the missing stream is replaced
    assert (tmp_path / (frozen.LOG_NAME + ".1")).stat().st_size == frozen.LOG_MAX_BYTES + 1
    assert log.stat().st_size < 1000


def test_log_dir_is_the_platform_user_log_dir():
    from platformdirs import user_log_dir

    from segexplorer import frozen

    assert frozen.log_dir() == Path(user_log_dir("SegExplorer", appauthor=False))


def test_entry_script_imports_without_running():
    import segexplorer._entry as entry

    assert callable(entry.main)


def test_entry_runs_the_frozen_self_check_on_its_flag(monkeypatch, capsys):
    import segexplorer._entry as entry
    from segexplorer import frozen

    monkeypatch.setattr(entry, "bootstrap", lambda: None)
    monkeypatch.setattr(sys, "argv", ["SegExplorer", frozen.SELF_CHECK_FLAG])
    monkeypatch.setattr(entry, "self_check", lambda: ["Qt plugins: AssertionError: none"])
    monkeypatch.setattr(entry, "self_check_report", lambda: ["glibc floor: 2.34"])
    assert entry.main() == 1
    out, err = capsys.readouterr()
    assert "FAILED: Qt plugins" in err and "failed" in out
    assert "frozen self-check: glibc floor: 2.34" in out
    monkeypatch.setattr(entry, "self_check", lambda: [])
    assert entry.main() == 0
    assert "all passed" in capsys.readouterr().out


# ------------------------------------------------------------------------- torch before Qt
LINUX_TORCH_FIRST = ["/b/_internal/libpython3.11.so.1.0", "/b/_internal/torch/lib/libc10.so",
                     "/b/_internal/torch/lib/libtorch_cpu.so",
                     "/b/_internal/PySide6/QtCore.abi3.so",
                     "/b/_internal/PySide6/Qt/lib/libQt6Core.so.6"]
WINDOWS_QT_FIRST = [r"C:\App\SegExplorer.exe", r"C:\Windows\System32\ntdll.dll",
                    r"C:\App\_internal\PySide6\msvcp140.dll",  # PySide6's own C++ runtime
                    r"C:\App\_internal\PySide6\Qt6Core.dll",
                    r"C:\App\_internal\torch\lib\c10.dll"]
MACOS_QT_FIRST = ["/A.app/Contents/Frameworks/PySide6/Qt/lib/QtCore.framework/Versions/A/QtCore",
                  "/A.app/Contents/Frameworks/torch/lib/libc10.dylib"]
HOOK_RAN = {"caller": "runtime hook", "qt_modules_before": []}


def test_load_order_check_passes_when_torch_came_first():
    from segexplorer import frozen

    assert frozen.load_order_problems(LINUX_TORCH_FIRST, HOOK_RAN, frozen=True) == []
    assert frozen.load_order_problems(LINUX_TORCH_FIRST[::-1][:1], HOOK_RAN, frozen=True) != []
    assert "torch libc10.so #1, Qt QtCore.abi3.so #3" in \
        frozen.load_order_summary(LINUX_TORCH_FIRST)


@pytest.mark.parametrize("libraries", [WINDOWS_QT_FIRST, MACOS_QT_FIRST, LINUX_TORCH_FIRST[::-1]])
def test_the_self_check_fails_when_qt_was_loaded_before_torch(libraries):
    from segexplorer import frozen

    problems = frozen.load_order_problems(libraries, HOOK_RAN, frozen=True)
    assert len(problems) == 1 and problems[0].startswith("Qt was loaded before torch: ")
    assert "came later" in problems[0]
    # torch not loaded at all, Qt loaded: also wrong
    qt_only = [lib for lib in libraries if not frozen.is_torch_core_library(lib)]
    assert "while torch is not loaded" in frozen.load_order_problems(qt_only, HOOK_RAN, True)[0]


def test_in_a_bundle_the_runtime_hook_must_have_run_before_qt():
    from segexplorer import frozen

    late = {"caller": "runtime hook", "qt_modules_before": ["PySide6", "PySide6.QtCore"]}
    assert frozen.load_order_problems(LINUX_TORCH_FIRST, late, frozen=True) == [
        "Qt was imported before the runtime hook: PySide6, PySide6.QtCore"]
    by_bootstrap = {"caller": "bootstrap", "qt_modules_before": []}
    (problem,) = frozen.load_order_problems(LINUX_TORCH_FIRST, by_bootstrap, frozen=True)
    assert "runtime hook did not run" in problem
    assert frozen.load_order_problems(LINUX_TORCH_FIRST, {}, frozen=False) == []  # a checkout
    # no library list (an unknown platform): the recorded state still counts
    assert frozen.load_order_problems([], by_bootstrap, frozen=True) == [problem]


def test_qt_and_torch_libraries_are_recognised_by_name_and_folder():
    from segexplorer import frozen

    for path in (*LINUX_TORCH_FIRST[3:], *WINDOWS_QT_FIRST[2:4], MACOS_QT_FIRST[0],
                 "/usr/lib/libQt6Gui.so.6", "/x/shiboken6/libshiboken6.abi3.so.6.8"):
        assert frozen.is_qt_library(path), path
    for path in ("/usr/lib/libqt5core.so", "/x/torch/lib/libc10.so", "/usr/lib/libgtk-3.so.0"):
        assert not frozen.is_qt_library(path), path
    for path in ("/x/libc10.so", r"C:\x\c10.dll", "/x/libc10.dylib", "/x/libc10.so.2"):
        assert frozen.is_torch_core_library(path), path
    for path in ("/x/libc10_cuda.so", r"C:\x\c10_cuda.dll", "/x/libc.so.6"):
        assert not frozen.is_torch_core_library(path), path


def test_outside_libraries_are_the_ones_not_in_the_bundle(tmp_path):
    from segexplorer import frozen

    internal = tmp_path / "SegExplorer" / "_internal"
    internal.mkdir(parents=True)
    libs = ["linux-vdso.so.1", str(internal / "torch" / "lib" / "libc10.so"),
            "/usr/lib/x86_64-linux-gnu/libGL.so.1", str(tmp_path / "SegExplorer" / "x.so")]
    assert frozen.outside_libraries(libs, internal) == ["libGL.so.1"]
    assert frozen.outside_libraries(libs, None) == []


_ORDER_SCRIPT = """
import sys
first, = sys.argv[1:]
if first == "hook":
    exec(open({hook!r}).read())
import PySide6.QtCore
import torch
from segexplorer import frozen
libraries = frozen.loaded_libraries()
print(frozen.load_order_summary(libraries))
for problem in frozen.load_order_problems(libraries, frozen=True):
    print("PROBLEM", problem)
"""


@pytest.mark.skipif(not sys.platform.startswith(("linux", "darwin", "win")), reason="native list")
@pytest.mark.parametrize("first", ["hook", "qt"])
def test_the_runtime_hook_loads_torch_before_qt_in_a_real_process(first):
    """Our hook's code, then what PyInstaller's PySide6 hook does (import QtCore), in a fresh
    interpreter; the process's own library list must show torch's libc10 before Qt, and the
    check must catch the opposite order (Qt first, the hook's state unset)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", _ORDER_SCRIPT.format(hook=str(HOOK)), first],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = run.stdout.splitlines()[0]
    assert summary.startswith("load order: torch lib") and ", Qt " in summary
    problems = [line for line in run.stdout.splitlines() if line.startswith("PROBLEM")]
    if first == "hook":
        assert problems == []
    else:
        assert any("Qt was loaded before torch" in p for p in problems)
        assert any("runtime hook did not run" in p for p in problems)


# ------------------------------------------------------------------------- Linux folder install
def _bundle_share(share: Path) -> None:
    """The bundle's share/ folder as the spec writes it (menu entry, AppStream file)."""
    (share / "applications").mkdir(parents=True)
    (share / "metainfo").mkdir(parents=True)
    (share / "applications" / DESKTOP.name).write_text(bundle_tools.bundle_desktop_entry(
        DESKTOP.read_text(encoding="utf-8"), "segexplorer"), encoding="utf-8")
    (share / "metainfo" / METAINFO.name).write_text(bundle_tools.bundle_metainfo(
        METAINFO.read_text(encoding="utf-8"), ["segexplorer"]), encoding="utf-8")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux desktop integration")
def test_install_desktop_entry_points_the_menu_at_the_bundle(tmp_path):
    import shutil

    bundle = tmp_path / 'Seg Explorer $1 "x"'
    share = bundle / "share"
    _bundle_share(share)
    shutil.copytree(ROOT / "resources" / "icons" / "hicolor", share / "icons" / "hicolor")
    script = shutil.copy(ROOT / "packaging" / "linux" / "install-desktop-entry.sh", bundle)
    exe = bundle / "SegExplorer"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    exe.write_text("#!/bin/sh\necho segexplorer 0.1.0\n")
    cli = Path(shutil.copy(ROOT / "packaging" / "linux" / "segexplorer", bundle))
    data = tmp_path / "data"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(data)}

    subprocess.run(["sh", script], env=env, check=True, capture_output=True)
    installed = data / "applications" / DESKTOP.name
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str
    parser.read_string(installed.read_text(encoding="utf-8"))
    entry = parser["Desktop Entry"]
    # string unescaping (\\ -> \), then the Exec quoting rules (\$ -> $, \" -> ")
    exec_value = entry["Exec"].replace("\\\\", "\\")
    assert exec_value == '"' + str(exe).replace('"', '\\"').replace("$", "\\$") + '" %f'
    assert entry["TryExec"] == str(exe)
    assert entry["Icon"] == APP_ID and entry["MimeType"] == _desktop_entry()["MimeType"]
    assert (data / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png").is_file()
    assert (data / "metainfo" / METAINFO.name).is_file()
    link = tmp_path / ".local" / "bin" / "segexplorer"  # the command line, on PATH
    assert os.readlink(link) == str(cli)
    assert subprocess.run([str(link)], capture_output=True, text=True).stdout == "segexplorer 0.1.0\n"

    subprocess.run(["sh", script, "--uninstall"], env=env, check=True, capture_output=True)
    assert not installed.exists()
    assert not list((data / "icons").rglob(f"{APP_ID}.*"))
    assert not link.is_symlink()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux desktop integration")
def test_install_desktop_entry_leaves_someone_elses_segexplorer_command_alone(tmp_path):
    bundle = tmp_path / "SegExplorer"
    (bundle / "share" / "applications").mkdir(parents=True)
    (bundle / "share" / "metainfo").mkdir(parents=True)
    shutil.copy(DESKTOP, bundle / "share" / "applications")
    shutil.copy(METAINFO, bundle / "share" / "metainfo")
    shutil.copytree(ROOT / "resources" / "icons" / "hicolor", bundle / "share" / "icons" / "hicolor")
    script = shutil.copy(ROOT / "packaging" / "linux" / "install-desktop-entry.sh", bundle)
    for name in ("SegExplorer", "segexplorer"):
        (bundle / name).write_text("#!/bin/sh\n")
        (bundle / name).chmod(0o755)
    own = tmp_path / ".local" / "bin" / "segexplorer"
    own.parent.mkdir(parents=True)
    own.write_text("#!/bin/sh\necho pip's\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "d")}
    run = subprocess.run(["sh", script], env=env, check=True, capture_output=True, text=True)
    assert "Left " in run.stdout and own.read_text() == "#!/bin/sh\necho pip's\n"
    subprocess.run(["sh", script, "--uninstall"], env=env, check=True, capture_output=True)
    assert own.is_file() and not own.is_symlink()


def test_spec_puts_the_linux_desktop_files_in_the_bundle():
    text = SPEC.read_text(encoding="utf-8")
    assert '"install-desktop-entry.sh"' in text
    assert (ROOT / "packaging" / "linux" / "install-desktop-entry.sh").stat().st_mode & 0o111


# ------------------------------------------------------------------------- the bundle's menu entry
def test_the_bundles_menu_entry_runs_the_command_the_bundle_has():
    original = _desktop_entry()
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str
    parser.read_string(bundle_tools.bundle_desktop_entry(DESKTOP.read_text(encoding="utf-8"),
                                                         "segexplorer"))
    entry = parser["Desktop Entry"]
    assert entry["Exec"] == "segexplorer %f"  # the field code kept: "Open with" passes the file
    assert entry["TryExec"] == "segexplorer"
    assert {k: v for k, v in entry.items() if k not in ("Exec", "TryExec")} == \
        {k: v for k, v in original.items() if k not in ("Exec", "TryExec")}
    # ... which is the command-line script the spec copies beside the launcher on Linux
    spec = SPEC.read_text(encoding="utf-8")
    assert "bundle_tools.bundle_desktop_entry(" in spec and "CLI_NAME)" in spec
    assert 'shutil.copy2(ROOT / "resources" / f"{APP_ID}.desktop"' not in spec  # not as written
    assert (ROOT / "packaging" / "linux" / "segexplorer").is_file()
    with pytest.raises(ValueError):
        bundle_tools.bundle_desktop_entry("[Desktop Entry]\nName=x\n", "segexplorer")


@pytest.mark.parametrize("tool", ["appstreamcli", "desktop-file-validate"])
def test_the_desktop_files_and_the_bundles_copies_validate(tool, tmp_path):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    _bundle_share(tmp_path / "share")
    if tool == "appstreamcli":
        files = [METAINFO, tmp_path / "share" / "metainfo" / METAINFO.name]
        command = ["appstreamcli", "validate", "--no-net"]
    else:
        files = [DESKTOP, tmp_path / "share" / "applications" / DESKTOP.name]
        command = ["desktop-file-validate"]
    for path in files:
        run = subprocess.run([*command, str(path)], capture_output=True, text=True)
        assert run.returncode == 0, f"{path}: {run.stdout}{run.stderr}"
    assert f"{' '.join(command)} resources/{files[0].name}" in DOCS.read_text(encoding="utf-8")


def test_the_metainfo_comment_points_at_a_command_that_exists():
    text = METAINFO.read_text(encoding="utf-8")
    comment = text[text.index("<!--") + 4:text.index("-->")]
    assert "--" not in comment  # an XML comment cannot hold one: the command is in the docs
    assert "-no-net" not in comment  # appstreamcli: "Unknown option -no-net"
    section = re.search(r'\("([^"]+)"\)', " ".join(comment.split())).group(1)
    assert f"## {section}\n" in DOCS.read_text(encoding="utf-8")


# ------------------------------------------------------------------------- child processes
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_LIBRARY_PATH is Linux's")
@pytest.mark.parametrize(("users", "bootloaders", "child_sees"), [
    ("/opt/lib", "{bundle}:/opt/lib", "/opt/lib"),  # the user had one: LD_LIBRARY_PATH_ORIG
    (None, "{bundle}", "unset"),  # the user had none
])
def test_programs_the_bundle_starts_get_the_users_library_path_back(monkeypatch, tmp_path,
                                                                    users, bootloaders,
                                                                    child_sees):
    """What PyInstaller's bootloader leaves in the environment, then our runtime hook; a child
    process (matplotlib's fc-list, in the bundle) must see the user's own value."""
    import runpy

    bundle = tmp_path / "SegExplorer" / "_internal"
    bundle.mkdir(parents=True)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    monkeypatch.setenv("LD_LIBRARY_PATH", bootloaders.format(bundle=bundle))
    if users is None:
        monkeypatch.delenv("LD_LIBRARY_PATH_ORIG", raising=False)
    else:
        monkeypatch.setenv("LD_LIBRARY_PATH_ORIG", users)
    runpy.run_path(str(ENV_HOOK), run_name="pyi_rth_segexplorer_env")
    child = subprocess.run(["sh", "-c", 'printf "%s|%s" "${LD_LIBRARY_PATH-unset}" '
                                        '"${LD_LIBRARY_PATH_ORIG-unset}"'],
                           capture_output=True, text=True, check=True)
    assert child.stdout == f"{child_sees}|unset"


def test_the_environment_hook_imports_nothing_but_the_standard_library():
    tree = ast.parse(ENV_HOOK.read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"os", "sys"}  # runs before PyInstaller's hooks: no Qt, no torch


# ------------------------------------------------------------------------- Qt's network plugins
def _host_library_dirs() -> list[Path]:
    import sysconfig

    arch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [f"/lib/{arch}", f"/usr/lib/{arch}", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
    return [Path(d) for d in dirs if Path(d).is_dir()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF files")
def test_the_network_information_plugins_go_and_take_the_host_libgio_with_them():
    """PyInstaller's binaries as this machine would give them: every ELF file of the installed
    PySide6 and the host libraries they link, followed by name; then the spec's patterns."""
    pytest.importorskip("elftools")
    import PySide6

    site = Path(PySide6.__file__).resolve().parent.parent
    ours = [p for p in (site / "PySide6").rglob("*.so*") if p.is_file() and not p.is_symlink()]
    inside = {p.name for p in ours}
    dirs = _host_library_dirs()
    host: dict[str, Path] = {}
    todo = [name for p in ours for name in bundle_tools.elf_needed(p)]
    while todo:
        name = todo.pop()
        if name in host or name in inside or name.startswith(("libc.so", "ld-linux")):
            continue
        found = next((d / name for d in dirs if (d / name).is_file()), None)
        if found is not None:
            host[name] = found
            todo.extend(bundle_tools.elf_needed(found))
    if "libgio-2.0.so.0" not in host:
        pytest.skip("no libgio on this machine: nothing for the plugin to drag in")
    binaries = [(str(p.relative_to(site)).replace(os.sep, "/"), str(p), "BINARY") for p in ours]
    binaries += [(name, str(path), "BINARY") for name, path in host.items()]

    def origin(path: str) -> str:
        return "wheel" if Path(path).is_relative_to(site) else "system"

    def names(entries):
        return {Path(d).name for d, _, _ in entries}

    gtk_only, _ = bundle_tools.drop_with_dependencies(
        binaries, [bundle_tools.GTK_THEME_PLUGIN], origin=origin)
    assert "libgio-2.0.so.0" in names(gtk_only)  # what the bundle carried: the plugin kept it
    kept, dropped = bundle_tools.drop_with_dependencies(
        binaries, [bundle_tools.GTK_THEME_PLUGIN, bundle_tools.NETWORK_INFORMATION_PLUGINS],
        origin=origin)
    assert {"libqglib.so", "libqnetworkmanager.so", "libqconnman.so", "libgio-2.0.so.0",
            "libgobject-2.0.so.0"} <= names(dropped)
    assert {"libglib-2.0.so.0", "libQt6Network.so.6", "libQt6XcbQpa.so.6"} <= names(kept)
    assert not [d for d, _, _ in kept if d.startswith("PySide6/Qt/plugins/networkinformation/")]


# ------------------------------------------------------------------------- the build's venv
def test_development_packages_are_the_importable_ones():
    present = {"transformers", "pytest"}
    assert bundle_tools.development_packages(
        lambda name: object() if name in present else None) == ["transformers", "pytest"]
    assert bundle_tools.development_packages(lambda name: None) == []
    assert {"segmentation_models_pytorch", "transformers"} <= set(bundle_tools.DEVELOPMENT_PACKAGES)


def _build_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            **extra}


@pytest.mark.skipif(sys.platform == "win32", reason="needs bash")
def test_build_script_refuses_the_development_venv():
    extra = bundle_tools.development_packages()
    run = subprocess.run(["bash", str(BUILD_SH), "--dry-run"], env=_build_env(),
                         capture_output=True, text=True)
    if not extra:  # a venv of the bundle's own: the dry run goes through
        assert run.returncode == 0, run.stderr
        return
    assert run.returncode == 1
    assert f"can import {', '.join(extra)} (the development venv?)" in run.stderr
    assert "build in a venv of its own" in run.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs bash")
def test_build_script_never_falls_back_to_the_development_venv(tmp_path):
    tree = tmp_path / "checkout"
    (tree / "packaging").mkdir(parents=True)
    shutil.copy(BUILD_SH, tree / "packaging" / "build.sh")
    for name, marker in ((".venv", "the development venv"), ("build/venv-cuda", "build/venv-cuda")):
        python = tree / name / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(f'#!/bin/sh\necho "python of {marker}" >&2\nexit 3\n')
        python.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV")}
    plain = subprocess.run(["bash", str(tree / "packaging" / "build.sh"), "--dry-run"],
                           env=env, capture_output=True, text=True)
    assert "the development venv" not in plain.stderr and plain.returncode != 0
    named = subprocess.run(["bash", str(tree / "packaging" / "build.sh"), "--dry-run",
                            "--flavour", "cuda"], env=env, capture_output=True, text=True)
    assert "python of build/venv-cuda" in named.stderr  # the recipe's venv for that flavour


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="binutils is for Linux builds")
def test_build_script_says_binutils_is_missing(tmp_path):
    tools = tmp_path / "bin"  # the commands build.sh's dry run uses, but no objdump/objcopy
    tools.mkdir()
    for name in ("dirname", "uname"):
        (tools / name).symlink_to(shutil.which(name))
    run = subprocess.run([shutil.which("bash"), str(BUILD_SH), "--dry-run"],
                         env=_build_env(PATH=str(tools)), capture_output=True, text=True)
    assert run.returncode == 1
    assert "PyInstaller needs objdump and objcopy on Linux: install binutils" in run.stderr


def _sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


def test_the_packaging_guide_builds_in_a_venv_of_its_own():
    text = DOCS.read_text(encoding="utf-8")
    venvs = [m for block in _sh_blocks(text) for m in re.findall(r"-m venv (\S+)", block)]
    assert venvs and all(v.startswith("build/venv-") for v in venvs), venvs
    for block in _sh_blocks(text):  # every recipe that installs for a build activates its venv
        if "pip install -e '.[packaging]'" in block:
            assert ". build/venv-" in block, block
    assert "bundle_tools.DEVELOPMENT_PACKAGES" in text


def test_the_packaging_guide_names_binutils_and_the_disk_peak():
    text = DOCS.read_text(encoding="utf-8")
    building = text[text.index("\n## Building\n"):text.index("\n### Linux\n")]
    assert "binutils" in building and "objdump" in building
    # the venv, the bundle and the release files together, and the moment the archive is split
    assert re.search(r"about \*\*13\.5 GB\*\* once built and released", building)
    assert re.search(r"about\s+\*\*16 GB\*\* free at its peak", building)


def _cpu_estimate_mib(row: str, text: str) -> int:
    """The first MiB figure in the CPU column of the table row that starts with ``row``."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(row))
    header = next(lines[i] for i in range(at, -1, -1) if lines[i].startswith("| |"))

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    column = next(i for i, cell in enumerate(cells(header)) if cell.startswith("CPU"))
    return int(re.search(r"([\d,]+) MiB", cells(lines[at])[column]).group(1).replace(",", ""))


def test_the_cpu_size_estimate_is_not_the_one_from_before_pyarrow():
    """956 MiB was measured before pyarrow (150 MiB of libraries) became a dependency."""
    text = DOCS.read_text(encoding="utf-8")
    flavours = _cpu_estimate_mib("| Linux size |", text)
    measured = _cpu_estimate_mib("| bundle `dist/SegExplorer/` |", text)
    assert flavours == measured  # the two tables say the same
    assert measured >= 956 + 100
    assert "0.95 GB" not in text


# ------------------------------------------------------------------------- macOS
def test_macos_floor_is_the_newest_any_wheel_needs():
    wheels = [
        ("torch", ["cp311-cp311-macosx_14_0_arm64"]),
        ("PySide6-Essentials", ["cp39-abi3-macosx_13_0_universal2"]),
        ("numpy", ["cp311-cp311-macosx_14_0_arm64", "cp311-cp311-macosx_11_0_arm64"]),
        ("captum", ["py3-none-any"]),
        ("scipy", ["cp311-cp311-macosx_12_0_arm64.macosx_14_0_arm64"]),
    ]
    assert bundle_tools.macos_floor(wheels) == ("14.0", ["torch"])
    assert bundle_tools.macos_floor(wheels[1:]) == ("13.0", ["PySide6-Essentials"])
    # older than Apple silicon: the first macOS it has
    assert bundle_tools.macos_floor([("x", ["cp311-cp311-macosx_10_9_universal2"])]) == ("11.0", [])
    assert bundle_tools.macos_floor([("t", ["cp311-cp311-manylinux_2_28_x86_64"])]) is None


def test_wheel_tags_are_read_from_the_installed_distributions():
    tags = dict(bundle_tools.wheel_tags())
    assert any(t.startswith("cp") for t in tags["torch"])
    if sys.platform.startswith("linux"):  # no macOS wheel here
        assert bundle_tools.macos_floor(tags.items()) is None


def test_spec_takes_the_apps_minimum_macos_from_the_wheels():
    tree = _spec_tree()
    (bundle,) = _calls(tree, "BUNDLE")
    plist = _keyword(bundle, "info_plist")
    values = dict(zip((ast.literal_eval(k) for k in plist.keys), plist.values))
    assert ast.unparse(values["LSMinimumSystemVersion"]) == "MACOS_MINIMUM"
    assert ast.unparse(_assignments(tree)["_macos"]) == \
        "bundle_tools.macos_floor(bundle_tools.wheel_tags())"


def test_the_packaging_guide_says_apple_silicon_only_and_macos_14():
    text = DOCS.read_text(encoding="utf-8")
    macos = text[text.index("\n### macOS\n"):text.index("\n## Release files")]
    assert "x86_64 on Intel" not in macos and "There is no Intel build." in macos
    assert "macOS 14" in macos and "LSMinimumSystemVersion" in macos


def test_a_file_finder_opens_with_the_app_reaches_the_window(qapp, tmp_path):
    """macOS hands "Open With" to the running app as a QFileOpenEvent, not on the command
    line: the handler opens the file; other events pass on."""
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QFileOpenEvent

    from segexplorer.gui.app import open_files_from_the_desktop

    opened: list[str] = []
    handler = open_files_from_the_desktop(qapp, opened.append)
    try:
        photo = tmp_path / "a photo.png"
        assert qapp.sendEvent(qapp, QFileOpenEvent(str(photo))) is True
        assert opened == [str(photo)]
        qapp.sendEvent(qapp, QEvent(QEvent.Type.User))
        qapp.sendEvent(qapp, QFileOpenEvent(""))
        assert opened == [str(photo)]
    finally:
        qapp.removeEventFilter(handler)
        handler.deleteLater()


# ------------------------------------------------------------------------- README's Qt libraries
def _readme_packages(after: str) -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(after)
    return set(re.findall(r"`([^`]+)`", text[start:start + 900])[0].split())


def test_readme_lists_the_libraries_ci_installs_for_offscreen_qt():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    installs = set(re.search(r"for pkg in ([^;]+);", ci).group(1).split())
    assert _readme_packages("the tests (Qt's offscreen platform) need") == installs


def _debian_package(soname: str) -> str:
    """Debian's library package name (policy 8.1): libfoo.so.N -> libfooN; a name ending in a
    digit takes a hyphen: libX11.so.6 -> libx11-6."""
    name, version = re.fullmatch(r"(.+)\.so\.(\d+)", soname).groups()
    name = name.lower()
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF files")
def test_readme_lists_every_x11_library_the_qt_xcb_plugin_links():
    """Without them the window stops with 'Could not load the Qt platform plugin "xcb"'."""
    pytest.importorskip("elftools")
    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    needed = set(bundle_tools.elf_needed(qt / "plugins" / "platforms" / "libqxcb.so"))
    needed |= set(bundle_tools.elf_needed(next((qt / "lib").glob("libQt6XcbQpa.so*"))))
    x11 = {n for n in needed if n.lower().startswith(("libxcb", "libx11", "libxkbcommon-x11"))}
    assert {"libxcb-cursor.so.0", "libxcb-icccm.so.4"} <= x11
    wanted = {_debian_package(n) for n in x11}
    assert wanted <= _readme_packages("The window on an X display")
