#!/usr/bin/env bash
# Set up (if needed) and start the SegExplorer window. Extra arguments go to `segexplorer`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/segexplorer "$@"
