"""Start-up: the window's modules import no torch, the window paints before torch has
loaded, and the torch-free facts the window starts with equal the engine's."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from segexplorer.gui.document import catalog

PROBE_TIMEOUT_S = 240


def _run(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=PROBE_TIMEOUT_S)


def test_window_modules_import_no_torch():
    done = _run("import sys\n"
                "import segexplorer.gui.app, segexplorer.gui.main_window\n"
                "heavy = sorted(m for m in ('torch', 'torchvision', 'captum', 'scipy')\n"
                "               if m in sys.modules)\n"
                "assert not heavy, heavy\n")
    assert done.returncode == 0, done.stderr


def test_window_paints_before_torch_has_loaded(tmp_path):
    launched = time.time()
    done = _run("import sys\n"
                "from segexplorer.gui.app import run_app\n"
                "sys.exit(run_app(['segexplorer']))\n",
                SEGEXPLORER_STARTUP_PROBE="1", XDG_CONFIG_HOME=str(tmp_path))
    assert done.returncode == 0, done.stderr
    events = {}
    for line in done.stdout.splitlines():
        if line.startswith("startup-probe "):
            parts = line.split()
            events[parts[1]] = [float(v) for v in parts[2:]]
    assert set(events) == {"painted", "torch"}, done.stdout + done.stderr
    painted, (loaded, import_s) = events["painted"][0], events["torch"]
    assert launched < painted < loaded
    assert import_s > 0


def test_torch_free_facts_equal_the_engine():
    from segexplorer.engine.analysis import METHODS, ExplainRequest
    from segexplorer.engine.attribution import compute  # noqa: F401 - checks its registry
    from segexplorer.engine.image import DEFAULT_SIZE
    from segexplorer.engine.methods import METHODS as REGISTRY
    from segexplorer.engine.models import ARCHITECTURES, DEFAULT_ARCHITECTURE

    assert catalog.DEFAULT_SIZE == DEFAULT_SIZE
    assert catalog.DEFAULT_ARCHITECTURE == DEFAULT_ARCHITECTURE
    assert catalog.METHODS == METHODS == ExplainRequest("x.png").methods  # the default
    assert catalog.ALL_METHODS == REGISTRY  # every method the engine computes
    for name, info in catalog.BUILTIN_ARCHITECTURES.items():
        arch = ARCHITECTURES[name]
        assert (info.description, info.default_layer) == (arch.description,
                                                          arch.default_layer)
    builtin = {n for n, a in ARCHITECTURES.items() if a.weights_enum is not None}
    assert builtin == set(catalog.BUILTIN_ARCHITECTURES)


@pytest.mark.parametrize("text", ["zero", " Black ", "blur", "#FF8000", "ff8000",
                                  "255, 128,0", "256,0,0", "red", "#12345", ""])
def test_baseline_labels_equal_the_engine(text):
    from segexplorer.engine.baselines import parse_baseline
    from segexplorer.engine.errors import UserError

    try:
        expected = parse_baseline(text).label
    except UserError:
        expected = None
    assert catalog.baseline_label(text) == expected


def test_about_lists_versions_and_uses_the_window_icon(make_window):
    from PySide6.QtWidgets import QApplication

    from segexplorer.gui.app import _app_icon

    icon = _app_icon()
    assert not icon.isNull() and len(icon.availableSizes()) >= 5
    QApplication.instance().setWindowIcon(icon)
    window = make_window(show=False)
    window.commands.about.trigger()
    text = window.dialogs.current.text()
    for name in ("PyTorch", "CUDA", "torchvision", "Captum", "NumPy", "Matplotlib",
                 "PySide6", "Qt ", "Python"):
        assert name in text, name
    assert not window.dialogs.current.iconPixmap().isNull()
    window.dialogs.current.close()
