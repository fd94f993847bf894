#!/usr/bin/env bash
# Everything a session with a lent GPU should measure, in one run (see docs/performance.md).
# Usage on the GPU machine, from the repository root:  bash benchmarks/gpu_session.sh OUTDIR
set -uo pipefail
out=${1:-gpu-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
run() { echo "== $*"; "$@" 2>&1 | tee -a "$out/log.txt"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
run python benchmarks/bench_all_classes.py --model fcn_resnet101 --size 640 --device cuda \
    --repeat 3 --json "$out/all_classes.json"
run python benchmarks/bench_fast_mode.py --model fcn_resnet101 --size 640 --device cuda
run python benchmarks/bench_click.py --size 640 --device cuda --clicks 30 --json "$out/click.json"
