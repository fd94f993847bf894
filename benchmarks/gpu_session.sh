#!/usr/bin/env bash
# Everything a session with a lent GPU should measure and check, in one run
# (figures go into docs/performance.md). From the repository root on the GPU machine:
#
#   bash benchmarks/gpu_session.sh OUTDIR
#
# The GPU machine's own python3 (with torch) is used. Packages it lacks travel as wheels
# in .whl/ (git-ignored via .git/info/exclude): captum, e.g.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl captum==0.9.0
# Each step has its own time limit, so one that hangs cannot take the others' time; the
# GPU test suite runs first, then the memory step, then the benchmarks. The last line is a
# one-line verdict (and the exit status says the same).
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
results=()  # "name exit" per step, for the verdict
step() {  # step SECONDS NAME COMMAND...
    local limit=$1 name=$2
    shift 2
    echo "== [$name] $* (limit ${limit}s)" | tee -a "$log"
    local t0=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    local code=${PIPESTATUS[0]}
    echo "== [$name] exit $code after $((SECONDS - t0)) s" | tee -a "$log"
    results+=("$name $code")
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, torchvision, captum, sys; print('python', sys.version.split()[0],
'torch', torch.__version__, 'torchvision', torchvision.__version__, 'captum', captum.__version__,
'cudnn', torch.backends.cudnn.version())" | tee -a "$out/gpu.txt"

# the whole GPU suite first: every parity test (built-in models, model cards, every layer
# kind, every method, the evaluation) with --device cuda, and tests/gpu (the budget's
# peaks, real out-of-memory errors, strict fp32). Counts are images on every device.
step 480 suite python3 -m pytest -q -p no:cacheprovider --device cuda \
    tests/test_engine_parity.py tests/test_methods_parity.py tests/test_model_cards.py \
    tests/test_layers.py tests/test_evaluation.py tests/gpu \
    -W ignore::pytest.PytestConfigWarning
# every method under a 4 GiB budget on fcn_resnet101 at 640 px: the peak of each
# (integrated gradients with Captum's 50 steps: the out-of-memory case)
step 400 memory python3 benchmarks/bench_memory.py --device cuda --size 640 --budgets 4 \
    --json "$out/memory.json"
step 150 all_classes python3 benchmarks/bench_all_classes.py --model fcn_resnet101 --size 640 \
    --device cuda --repeat 3 --fast --json "$out/all_classes.json"
# every method against the library's calls per class, both sides in strict fp32 (printed)
step 200 methods python3 benchmarks/bench_methods.py --device cuda --size 160 --classes 3 \
    --repeat 2 --json "$out/methods.json"
step 50 click python3 benchmarks/bench_click.py --size 640 --device cuda --clicks 30 \
    --json "$out/click.json"
step 40 click_fast python3 benchmarks/bench_click.py --size 640 --device cuda --clicks 30 \
    --models fcn_resnet101 --precision bf16 --json "$out/click_fast.json"
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

failed=()
for r in "${results[@]}"; do
    [ "${r##* }" = 0 ] || failed+=("${r% *} (exit ${r##* })")
done
if [ ${#failed[@]} -eq 0 ]; then
    echo "VERDICT: all ${#results[@]} steps passed (suite, memory, benchmarks)" | tee -a "$log"
else
    echo "VERDICT: ${#failed[@]} of ${#results[@]} steps failed: ${failed[*]}" | tee -a "$log"
    exit 1
fi
