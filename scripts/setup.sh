#!/usr/bin/env bash
# Create .venv (once) and install SegExplorer with its test tools into it.
# torch/torchvision are pinned in pyproject.toml; use pip (not uv/poetry) so that
# local wheel caches are honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.segexplorer-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  touch "$stamp"
fi
