#!/usr/bin/env bash
# Set up (if needed) and run every check: ruff, the import-linter layer contracts, mypy,
# pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
export MPLBACKEND=Agg
.venv/bin/ruff check segexplorer tests benchmarks
.venv/bin/lint-imports
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
