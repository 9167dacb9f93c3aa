#!/usr/bin/env bash
# The neural engine's speed on one GPU (issue 14): the benchmark rows that fit in one 10-minute run on one
# H100/H200, as one table on stdout and, when $OUT is set, in $OUT/neural_gpu.md. Exits non-zero when a row
# could not run or the run failed. Run from the repository root.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine: full size, random bf16 weights, 640x640
#   bash benchmarks/gpu_check.sh --tiny     # on a CPU: the same plan on the tiny model (proves the script)
#   bash benchmarks/gpu_check.sh --wheels   # on a machine with a package index: the packages a bare GPU image
#                                           # lacks, as Python 3.12 wheels in .whl/ (carry .whl to the GPU)
#
# The plan, with the fixed device-time estimate per row on one H100/H200 (compile ~20-30 s per input shape;
# one 14B pass at 640x640 ~2.5-4 s in bf16). Rows are cumulative and each builds a fresh random model:
#   setup: wheels + imports + matmul rate + VAE warm-up and its one timed chunk           ~60 s
#   eager:     fast ~25 s, fast-1p ~13 s, quality (2 of 40 steps timed, scaled) ~23 s      ~70 s
#   +compile:  the same three, plus 3 inductor compiles (passes 2, 1, 3)                   ~115 s
#   +fp8:      torchao float8 on the block linears, plus 3 compiles                        ~120 s
#   +attention (_native_cudnn), plus 3 compiles                                            ~120 s
#   total                                                                                  ~485 s
# The step-cache row (quality with every one of its 40 steps, ~3-4 min) does not fit: run
# `python benchmarks/neural_gpu.py --modes quality --opts eager,compile,fp8,cache` on its own.
# Each row's `plan GB` is the memory planner's prediction (src/infinitetalk/engines/neural/plan.py, tensors with
# no data on the CPU, a few seconds at setup) beside its measured `peak GB`: the first GPU run checks the planner too.
# --budget-s skips the rows left once 480 s are spent, and timeout stops the run at 580 s, so the call
# always ends inside 10 minutes; rows print as they finish.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(diffusers torchao pydantic pydantic-core pydantic-settings python-dotenv platformdirs annotated-types
        typing-inspection typing-extensions pyloudnorm)

if [[ "${1:-}" == "--wheels" ]]; then
    # The versions this checkout's environment runs, so the GPU machine runs the same code.
    py=.venv/bin/python; [[ -x $py ]] || py=python3
    pins=$($py -c 'import sys, importlib.metadata as m; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' \
        "${WHEELS[@]}")
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    rm -rf .whl
    $py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl $pins
    du -sh .whl
    exit 0
fi

args=(--quality-steps 2 --budget-s 480)
if [[ "${1:-}" == "--tiny" ]]; then
    py=.venv/bin/python; [[ -x $py ]] || py=python3
    args+=(--tiny)
else
    py=python3
    if [[ -d .whl ]]; then
        $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
        export PYTHONPATH=/tmp/site
    fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if ! $py -c 'import diffusers, torchao, pydantic_settings, platformdirs, pyloudnorm' 2>/dev/null; then
    echo "gpu_check: this Python lacks the neural extra's packages: run 'bash benchmarks/gpu_check.sh --wheels'" \
         "on a machine with a package index and bring .whl/ along" >&2
    exit 2
fi

table=${OUT:+$OUT/neural_gpu.md}
set +e
# torchao's CUDA-only extensions and torch's pytree notes log a line each at import: noise, not failures.
timeout 580 $py benchmarks/neural_gpu.py "${args[@]}" --modes fast,fast-1p,quality \
    --opts eager,compile,fp8,attention ${table:+--out "$table"} \
    2> >(grep -v -e '^Failed to load' -e 'KernelPreference' -e 'ScaleCalculationMode' -e 'Unable to import `torchao`' >&2)
rc=$?
set -e
if [[ $rc == 124 ]]; then
    echo "gpu_check: stopped at 580 s; the rows above are what it measured" >&2
fi
exit $rc
