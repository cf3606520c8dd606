#!/usr/bin/env bash
# The GPU check of issue 11, in two steps.
#
#   bash bench/gpu_check.sh fetch DIR   (on a machine with PyPI: downloads pycuda's sdist and the
#                                        wheels of its pure-Python dependencies into DIR)
#   bash bench/gpu_check.sh run DIR     (on the lent GPU machine, which has no network: builds
#                                        pycuda from DIR, runs the GPU tests and the GPU bench)
#
# The run step, from the repository root, in one go of at most ~10 minutes: pycuda's build
# (~3-5 min on 16 cores), graphc's extension, tests/test_cuda_gpu.py and the nvcc tests, the
# per-target op tests with target=cuda (time-boxed), then bench/gpu_rows.py. Logs and
# gpu_rows.json go to $OUT (the device tool's output folder) or ./gpu_check_out.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}; dir=${2:-}
if [[ -z "$mode" || -z "$dir" ]]; then
    echo "usage: bash bench/gpu_check.sh fetch|run DIR" >&2; exit 2
fi

if [[ "$mode" == fetch ]]; then
    mkdir -p "$dir"
    python -m pip download --no-deps --no-binary pycuda pycuda -d "$dir"
    # its dependencies as wheels (pytools, platformdirs, mako, markupsafe, typing_extensions,
    # siphash24 ...), for the Python this script runs with
    python -m pip download --only-binary :all: pytools platformdirs mako markupsafe \
        typing_extensions siphash24 -d "$dir"
    ls -l "$dir"; exit 0
fi
[[ "$mode" == run ]] || { echo "unknown mode $mode" >&2; exit 2; }

out=${OUT:-$PWD/gpu_check_out}; mkdir -p "$out"
log() { echo "== $(date +%T) $*" | tee -a "$out/summary.txt"; }
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
export CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")}
export CUDA_ROOT=$CUDA_HOME PATH=$CUDA_HOME/bin:$PATH
export GRAPHC_CACHE_DIR=$(mktemp -d) MAKEFLAGS=-j$(nproc)

log "pycuda from $dir (CUDA_HOME=$CUDA_HOME)"
if ! python -c "import pycuda.driver" 2>/dev/null; then
    timeout 420 python -m pip install --no-index --find-links "$dir" --no-build-isolation \
        pycuda > "$out/pycuda_build.log" 2>&1
    log "pycuda build: rc=$? (log: pycuda_build.log)"
fi
python -c "import pycuda.driver as d; d.init(); print(d.Device(0).name(), d.Device(0).compute_capability())" \
    2>&1 | tee -a "$out/summary.txt"

log "graphc extension"
python setup.py build_ext --inplace -q > "$out/build_ext.log" 2>&1

log "GPU suite and nvcc tests"
timeout 180 python -m pytest -q -p no:cacheprovider -rs tests/test_cuda_gpu.py \
    tests/test_cuda_target_compile.py -s > "$out/gpu_tests.txt" 2>&1
log "GPU suite: rc=$? ($(tail -1 "$out/gpu_tests.txt"))"

log "per-target op tests on cuda (time-boxed)"
timeout 150 python -m pytest -q -p no:cacheprovider -x tests/test_ops.py -k cuda \
    > "$out/op_tests_cuda.txt" 2>&1
log "op tests: rc=$? ($(tail -1 "$out/op_tests_cuda.txt"))"

log "GPU bench rows"
timeout 200 python bench/gpu_rows.py --out "$out/gpu_rows.json" > "$out/gpu_rows.txt" 2>&1
log "bench: rc=$?"
cat "$out/gpu_rows.txt" | tee -a "$out/summary.txt"
