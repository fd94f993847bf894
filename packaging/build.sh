#!/usr/bin/env bash
# Build the one-folder application bundle dist/SegExplorer/ with PyInstaller.
#
#   packaging/build.sh            build
#   packaging/build.sh --smoke    build, then check the bundle: its self-check (torchvision's
#                                 operators, SVG/PDF figures, resources, Qt plugins) and the
#                                 window's smoke test, offscreen:
#                                 dist/SegExplorer/SegExplorer --smoke-test --screenshot dist/smoke.png
#   packaging/build.sh --smoke-only   run the smoke test on the bundle already built
#
# Run it from any folder, with the Python environment that holds SegExplorer, its
# dependencies and PyInstaller (pip install -e '.[packaging]') active, or with PYTHON=/path/to/python.
# On Windows run it from Git Bash (the executable is then dist/SegExplorer/SegExplorer.exe);
# on macOS it also builds dist/SegExplorer.app. See docs/packaging.md.
set -euo pipefail

smoke=0
build=1
for arg in "$@"; do
    case "$arg" in
        --smoke) smoke=1 ;;
        --smoke-only) smoke=1; build=0 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -n "${VIRTUAL_ENV:-}" ]]; then
        PYTHON="python"
    elif [[ -x .venv/bin/python ]]; then
        PYTHON=".venv/bin/python"
    elif [[ -x .venv/Scripts/python.exe ]]; then
        PYTHON=".venv/Scripts/python.exe"
    else
        PYTHON="python3"
    fi
fi

case "$(uname -s)" in
    MINGW*|MSYS*|CYGWIN*) exe="dist/SegExplorer/SegExplorer.exe" ;;
    *) exe="dist/SegExplorer/SegExplorer" ;;
esac

bundle_size() {
    du -sh dist/SegExplorer | cut -f1
}

if (( build )); then
    if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
        echo "build.sh: PyInstaller is not installed for $PYTHON: pip install -e '.[packaging]'" >&2
        exit 1
    fi
    "$PYTHON" -c "import segexplorer, torch, torchvision, PySide6, captum, matplotlib" || {
        echo "build.sh: SegExplorer or one of its dependencies is missing for $PYTHON" >&2
        exit 1
    }
    echo "build.sh: $("$PYTHON" -c 'import sys, torch, PyInstaller; print(f"Python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), PyInstaller {PyInstaller.__version__}")')"
    started=$(date +%s)
    "$PYTHON" -m PyInstaller --noconfirm --clean \
        --distpath dist --workpath build/pyinstaller packaging/segexplorer.spec
    elapsed=$(( $(date +%s) - started ))
    printf 'build.sh: built %s in %dm%02ds; bundle size %s (%s files)\n' \
        "dist/SegExplorer/" $(( elapsed / 60 )) $(( elapsed % 60 )) "$(bundle_size)" \
        "$(find dist/SegExplorer -type f | wc -l | tr -d ' ')"
fi

if (( smoke )); then
    if [[ ! -x "$exe" ]]; then
        echo "build.sh: $exe is missing: build first" >&2
        exit 1
    fi
    echo "build.sh: frozen self-check: $exe --frozen-self-check"
    status=0
    "$exe" --frozen-self-check || status=$?
    if (( status != 0 )); then
        echo "build.sh: FAILED: the frozen self-check exited with $status" >&2
        exit 1
    fi
    shot="dist/smoke.png"
    rm -f "$shot"
    echo "build.sh: frozen smoke test: $exe --smoke-test --screenshot $shot"
    started=$(date +%s)
    status=0
    QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" "$exe" --smoke-test --screenshot "$shot" || status=$?
    elapsed=$(( $(date +%s) - started ))
    if (( status != 0 )); then
        echo "build.sh: FAILED: the frozen smoke test exited with $status after ${elapsed}s" >&2
        exit 1
    fi
    if [[ ! -s "$shot" ]]; then
        echo "build.sh: FAILED: the frozen smoke test wrote no screenshot at $shot" >&2
        exit 1
    fi
    echo "build.sh: frozen smoke test passed in ${elapsed}s; screenshot $shot"
fi
