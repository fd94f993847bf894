#!/usr/bin/env bash
# Everything a session with a lent GPU should measure and check, in one run
# (figures go into docs/performance.md). From the repository root on the GPU machine:
#
#   bash benchmarks/gpu_session.sh OUTDIR
#
# The GPU machine's own python3 (with torch) is used. Packages it lacks travel as wheels
# in .whl/ (git-ignored via .git/info/exclude): captum, e.g.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl captum==0.9.0
# Each step has its own time limit, so one that hangs cannot take the others' time;
# the most important (the all-classes benchmark) runs first.
set -uo pipefail
out=${1:-gpu-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
log="$out/log.txt"
step() {  # step SECONDS NAME COMMAND...
    local limit=$1 name=$2
    shift 2
    echo "== [$name] $* (limit ${limit}s)" | tee -a "$log"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    echo "== [$name] exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s" | tee -a "$log"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, torchvision, captum, sys; print('python', sys.version.split()[0],
'torch', torch.__version__, 'torchvision', torchvision.__version__, 'captum', captum.__version__,
'cudnn', torch.backends.cudnn.version())" | tee -a "$out/gpu.txt"

step 150 all_classes python3 benchmarks/bench_all_classes.py --model fcn_resnet101 --size 640 \
    --device cuda --repeat 3 --fast --json "$out/all_classes.json"
step 50 click python3 benchmarks/bench_click.py --size 640 --device cuda --clicks 30 \
    --json "$out/click.json"
step 40 click_fast python3 benchmarks/bench_click.py --size 640 --device cuda --clicks 30 \
    --models fcn_resnet101 --precision bf16 --json "$out/click_fast.json"
step 70 tests python3 -m pytest -q -p no:cacheprovider --device cuda \
    tests/test_engine_parity.py tests/gpu -W ignore::pytest.PytestConfigWarning
# the user's own models (model cards: torchvision 5 classes, smp, SegFormer, python) and
# every built-in layer kind, against Captum on the GPU (needs smp and transformers)
step 90 card_tests python3 -m pytest -q -p no:cacheprovider --device cuda \
    tests/test_model_cards.py tests/test_layers.py -k "explain_equals or equals_captum" \
    -W ignore::pytest.PytestConfigWarning
step 110 fast_mode python3 benchmarks/bench_fast_mode.py --model fcn_resnet101 --size 640 \
    --device cuda --repeat 3 --layouts
# the evaluation of every class (issue 14) against the same metrics per target with the
# libraries' calls (Captum's infidelity / sensitivity_max, a forward per deletion step)
step 120 evaluation python3 benchmarks/bench_evaluation.py --device cuda --size 160 \
    --pixel-steps 20 --chance-runs 10 --mprt-steps 5 --sensitivity-samples 5 \
    --json "$out/evaluation.json"
# a dataset at the speed of the model (issue 21): the batch's images/s against its own
# engine alone (same images, model and options, nothing written), fp32 and fast mode;
# goals: batch / engine-only >= 0.8 in fp32, >= 0.7 in fast mode. The batch needs
# filelock, tqdm and pyarrow (in .whl/ when the machine lacks them).
step 240 batch python3 benchmarks/bench_batch.py --model fcn_resnet101 --size 640 \
    --device cuda --images 20 --variants engine,batch --json "$out/batch.json"
step 200 batch_fast python3 benchmarks/bench_batch.py --model fcn_resnet101 --size 640 \
    --device cuda --images 20 --variants engine,batch --fast --json "$out/batch_fast.json"
# the same in fast mode when each image writes its arrays and report only
step 150 batch_fast_arrays python3 benchmarks/bench_batch.py --model fcn_resnet101 \
    --size 640 --device cuda --images 20 --variants engine,batch --fast --outputs arrays \
    --json "$out/batch_fast_arrays.json"
