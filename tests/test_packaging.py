"""Packaging checks that run in seconds: the spec, the build script, the icons, the desktop
entry, the AppStream metadata and the frozen-app bootstrap. Nothing here builds a bundle:
``packaging/build.sh --smoke`` does (see docs/packaging.md)."""

from __future__ import annotations

import ast
import configparser
import contextlib
import io
import subprocess
import sys
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


def test_spec_parses_and_builds_one_windowed_folder_named_segexplorer():
    tree = _spec_tree()
    (exe,) = _calls(tree, "EXE")
    assert _keyword(exe, "name").id == "APP_NAME"
    assert ast.literal_eval(_keyword(exe, "console")) is False
    assert ast.literal_eval(_keyword(exe, "exclude_binaries")) is True  # one folder
    assert ast.literal_eval(_keyword(exe, "upx")) is False
    assert len(_calls(tree, "COLLECT")) == 1
    assert 'APP_NAME = "SegExplorer"' in SPEC.read_text(encoding="utf-8")


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
    assert "--smoke-test --screenshot" in text


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
    assert "segexplorer-gui" in binaries


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
    assert entry.main() == 1
    out, err = capsys.readouterr()
    assert "FAILED: Qt plugins" in err and "failed" in out
    monkeypatch.setattr(entry, "self_check", lambda: [])
    assert entry.main() == 0
    assert "all passed" in capsys.readouterr().out


# ------------------------------------------------------------------------- Linux folder install
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux desktop integration")
def test_install_desktop_entry_points_the_menu_at_the_bundle(tmp_path):
    import shutil

    bundle = tmp_path / 'Seg Explorer $1 "x"'
    share = bundle / "share"
    for folder, name in (("applications", DESKTOP.name), ("metainfo", METAINFO.name)):
        (share / folder).mkdir(parents=True)
        shutil.copy(ROOT / "resources" / name, share / folder / name)
    shutil.copytree(ROOT / "resources" / "icons" / "hicolor", share / "icons" / "hicolor")
    script = shutil.copy(ROOT / "packaging" / "linux" / "install-desktop-entry.sh", bundle)
    exe = bundle / "SegExplorer"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
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

    subprocess.run(["sh", script, "--uninstall"], env=env, check=True, capture_output=True)
    assert not installed.exists()
    assert not list((data / "icons").rglob(f"{APP_ID}.*"))


def test_spec_puts_the_linux_desktop_files_in_the_bundle():
    text = SPEC.read_text(encoding="utf-8")
    assert '"install-desktop-entry.sh"' in text
    assert (ROOT / "packaging" / "linux" / "install-desktop-entry.sh").stat().st_mode & 0o111
