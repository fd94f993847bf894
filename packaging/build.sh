#!/usr/bin/env bash
# Build the one-folder application bundle dist/SegExplorer/ with PyInstaller, check it, and
# make the release files.
#
#   packaging/build.sh [--flavour cpu|cuda]   build (the flavour is the environment's torch:
#                                  a CPU build of torch makes the CPU bundle; naming a flavour
#                                  makes the build stop if the torch is another one)
#   packaging/build.sh --smoke     build, then check the bundle: its self-check (flavour, load
#                                  order, torchvision's operators, SVG/PDF figures, resources,
#                                  Qt plugins), the command line, and the window's smoke test,
#                                  SegExplorer --smoke-test --screenshot dist/smoke.png, which
#                                  also fails if the window does not fit the screen: offscreen on
#                                  a 1024x768 screen (--screen WxH), or on the real one where
#                                  QT_QPA_PLATFORM is set (xcb under Xvfb, ...)
#   packaging/build.sh --release   build, then archive it into dist/release/ (split into parts
#                                  under 2 GiB where needed, with a .sha256 file)
#   --smoke-only, --release-only   the same on the bundle already built (both may be given)
#   --dry-run                      say what would be built, check the flavour and the
#                                  environment, build nothing
#
# Run it from any folder, with the Python environment that holds SegExplorer, its
# dependencies and PyInstaller (pip install -e '.[packaging]') active, or with PYTHON=/path/to/python,
# or with build/venv-FLAVOUR/ made as docs/packaging.md says. Not the development venv (.venv):
# PyInstaller freezes whatever the app can import, so the build refuses an environment with the
# model-card libraries or the test tools. On Linux PyInstaller needs objdump and objcopy (binutils).
# The build's output goes to dist/build-FLAVOUR.log too (the libraries copied from this machine,
# the glibc floor). On Windows run it from Git Bash (the launcher is then SegExplorer.exe and the
# command line segexplorer.com); on macOS it also builds dist/SegExplorer.app. See
# docs/packaging.md.
set -euo pipefail

smoke=0
build=1
release=0
dry_run=0
flavour=""
# The offscreen smoke test's screen: the smallest the app says it supports (the AppStream
# file's display_length, 768 px, on a 4:3 screen).
screen="1024x768"
while (( $# )); do
    case "$1" in
        --smoke) smoke=1 ;;
        --smoke-only) smoke=1; build=0 ;;
        --release) release=1 ;;
        --release-only) release=1; build=0 ;;
        --dry-run) dry_run=1; build=0 ;;
        --flavour|--flavor)
            (( $# >= 2 )) || { echo "build.sh: --flavour needs cpu or cuda" >&2; exit 2; }
            flavour="$2"; shift ;;
        --flavour=*|--flavor=*) flavour="${1#*=}" ;;
        --screen)
            (( $# >= 2 )) || { echo "build.sh: --screen needs a size such as 1280x800" >&2; exit 2; }
            screen="$2"; shift ;;
        --screen=*) screen="${1#*=}" ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$flavour" in
    ""|cpu|cuda|rocm) ;;
    *) echo "build.sh: unknown flavour '$flavour': cpu or cuda (rocm where torch is)" >&2; exit 2 ;;
esac
if [[ ! "$screen" =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]]; then
    echo "build.sh: --screen '$screen' is not a size such as 1280x800" >&2
    exit 2
fi
screen_width="${BASH_REMATCH[1]}"
screen_height="${BASH_REMATCH[2]}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The bundle's own venv (docs/packaging.md: build/venv-cpu, build/venv-cuda), never the
# development .venv, which holds the test tools and the model-card libraries.
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -n "${VIRTUAL_ENV:-}" ]]; then
        PYTHON="python"
    elif [[ -n "$flavour" && -x "build/venv-$flavour/bin/python" ]]; then
        PYTHON="build/venv-$flavour/bin/python"
    elif [[ -n "$flavour" && -x "build/venv-$flavour/Scripts/python.exe" ]]; then
        PYTHON="build/venv-$flavour/Scripts/python.exe"
    else
        PYTHON="python3"
    fi
fi

bundle="dist/SegExplorer"
app=""
case "$(uname -s)" in
    # The windowed launcher has no stdout on Windows: the self-check runs in its console twin
    # (the same program and runtime hook), the window's smoke test in the launcher.
    MINGW*|MSYS*|CYGWIN*) exe="$bundle/SegExplorer.exe"; cli="$bundle/segexplorer.com"; check_exe="$cli" ;;
    Darwin) exe="$bundle/SegExplorer"; cli="$exe"; check_exe="$exe"  # one program, linked as segexplorer
            app="dist/SegExplorer.app/Contents/MacOS/SegExplorer" ;;
    *) exe="$bundle/SegExplorer"; cli="$bundle/segexplorer"; check_exe="$exe" ;;
esac

# The flavour this environment's torch makes (packaging/bundle_tools.py decides, as the spec does).
env_flavour() {
    "$PYTHON" -c 'import sys; sys.path.insert(0, "packaging"); import bundle_tools; print(bundle_tools.torch_flavour())'
}

# The flavour the built bundle says it is, and whether it holds GPU libraries anyway.
bundle_flavour() {
    "$PYTHON" - "$bundle" <<'EOF'
import json, sys
from pathlib import Path
sys.path.insert(0, "packaging")
import bundle_tools
folder = Path(sys.argv[1])
info = next(folder.rglob("segexplorer-bundle.json"), None)
flavour = json.loads(info.read_text())["flavour"] if info else "unknown"
gpu = bundle_tools.gpu_files(str(p.relative_to(folder)).replace("\\", "/")
                             for p in folder.rglob("*") if p.is_file())
print(flavour, len(gpu), gpu[0] if gpu else "")
EOF
}

if (( build || dry_run )); then
    have="$(env_flavour)" || { echo "build.sh: torch is missing for $PYTHON" >&2; exit 1; }
    if [[ -n "$flavour" && "$flavour" != "$have" ]]; then
        echo "build.sh: refusing: the $flavour flavour was asked for, but $PYTHON has a $have build of torch ($("$PYTHON" -c 'import torch; print(torch.__version__)')); build the $flavour flavour in an environment with that torch (docs/packaging.md)" >&2
        exit 1
    fi
    "$PYTHON" -c "import segexplorer, torch, torchvision, PySide6, captum, matplotlib" || {
        echo "build.sh: SegExplorer or one of its dependencies is missing for $PYTHON" >&2
        exit 1
    }
    if [[ "$(uname -s)" == Linux ]] && ! { command -v objdump && command -v objcopy; } >/dev/null 2>&1; then
        echo "build.sh: PyInstaller needs objdump and objcopy on Linux: install binutils (apt-get install binutils, dnf install binutils)" >&2
        exit 1
    fi
    extra="$("$PYTHON" -c 'import sys; sys.path.insert(0, "packaging"); import bundle_tools; print(", ".join(bundle_tools.development_packages()))')"
    if [[ -n "$extra" ]]; then
        echo "build.sh: refusing: $PYTHON's environment can import $extra (the development venv?): PyInstaller would freeze what the app can import into the bundle; build in a venv of its own holding only pip install -e '.[packaging]' (docs/packaging.md)" >&2
        exit 1
    fi
    flavour="$have"
    echo "build.sh: flavour $flavour; $("$PYTHON" -c 'import sys, torch; print(f"Python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda})")')"
fi

if (( dry_run )); then
    echo "build.sh: dry run: would build $bundle/ ($flavour flavour) with $PYTHON"
    exit 0
fi

if (( build )); then
    if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
        echo "build.sh: PyInstaller is not installed for $PYTHON: pip install -e '.[packaging]'" >&2
        exit 1
    fi
    mkdir -p dist
    log="dist/build-$flavour.log"
    echo "build.sh: PyInstaller $("$PYTHON" -c 'import PyInstaller; print(PyInstaller.__version__)'); log in $log"
    started=$(date +%s)
    status=0
    SEGEXPLORER_FLAVOUR="$flavour" PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" \
        "$PYTHON" -m PyInstaller --noconfirm --clean \
        --distpath dist --workpath build/pyinstaller packaging/segexplorer.spec 2>&1 \
        | tee "$log" || status=$?  # pipefail: PyInstaller's status
    if (( status != 0 )) || [[ ! -d "$bundle" ]]; then
        echo "build.sh: FAILED: PyInstaller exited with $status (see $log)" >&2
        exit 1
    fi
    elapsed=$(( $(date +%s) - started ))
    printf 'build.sh: built %s/ (%s flavour) in %dm%02ds; bundle size %s (%s files)\n' \
        "$bundle" "$flavour" $(( elapsed / 60 )) $(( elapsed % 60 )) \
        "$(du -sh "$bundle" | cut -f1)" "$(find "$bundle" -type f | wc -l | tr -d ' ')"
    grep -E '^segexplorer.spec: (glibc floor|left out|[0-9]+ libraries copied)' "$log" \
        | sed 's/^segexplorer.spec: /build.sh: /' || true
fi

if (( smoke || release )); then
    if [[ ! -x "$exe" ]]; then
        echo "build.sh: $exe is missing: build first" >&2
        exit 1
    fi
    read -r built_flavour gpu_count first_gpu <<<"$(bundle_flavour)"
    if [[ -n "$flavour" && "$built_flavour" != "$flavour" ]]; then
        echo "build.sh: refusing: $bundle/ is the $built_flavour flavour, not $flavour" >&2
        exit 1
    fi
    flavour="$built_flavour"
    if [[ "$flavour" == cpu && "$gpu_count" != 0 ]]; then
        echo "build.sh: refusing to call this bundle CPU: it holds $gpu_count GPU libraries ($first_gpu, ...)" >&2
        exit 1
    fi
    if [[ "$flavour" != cpu && "$gpu_count" == 0 ]]; then
        echo "build.sh: refusing: the bundle says $flavour but holds no GPU libraries" >&2
        exit 1
    fi
fi

if (( smoke )); then
    for target in "$check_exe" $app; do
        echo "build.sh: frozen self-check: $target --frozen-self-check"
        status=0
        "$target" --frozen-self-check || status=$?
        if (( status != 0 )); then
            echo "build.sh: FAILED: the frozen self-check exited with $status" >&2
            exit 1
        fi
    done
    echo "build.sh: command line: $cli --version; $cli models"
    version="$("$cli" --version)" || { echo "build.sh: FAILED: $cli --version" >&2; exit 1; }
    expected="segexplorer $("$PYTHON" -c 'import re; print(re.search(r"__version__ = \"(.+)\"", open("segexplorer/__init__.py").read()).group(1))')"
    if [[ "$version" != "$expected" ]]; then
        echo "build.sh: FAILED: $cli --version printed '$version', not '$expected'" >&2
        exit 1
    fi
    "$cli" models >/dev/null || { echo "build.sh: FAILED: $cli models" >&2; exit 1; }
    shot="dist/smoke.png"
    rm -f "$shot"
    # The window opens at the size it chooses on a first run and must fit the screen it is on:
    # the real one where QT_QPA_PLATFORM names it, else Qt's offscreen screen at --screen's size.
    if [[ -n "${QT_QPA_PLATFORM:-}" ]]; then
        platform="$QT_QPA_PLATFORM"
        where="the $platform screen"
    else
        mkdir -p dist
        printf '{"screens": [{"name": "smoke", "x": 0, "y": 0, "width": %d, "height": %d, "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}\n' \
            "$screen_width" "$screen_height" > dist/smoke-screen.json
        platform="offscreen:configfile=dist/smoke-screen.json"
        where="a ${screen_width}x${screen_height} offscreen screen"
    fi
    echo "build.sh: frozen smoke test on $where: $exe --smoke-test --screenshot $shot"
    started=$(date +%s)
    status=0
    QT_QPA_PLATFORM="$platform" "$exe" --smoke-test --screenshot "$shot" || status=$?
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

if (( release )); then
    echo "build.sh: release files ($flavour flavour) in dist/release/"
    "$PYTHON" packaging/release.py --flavour "$flavour" --bundle "$bundle" --out dist/release
fi
