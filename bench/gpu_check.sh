#!/usr/bin/env bash
# The GPU check of issue 11 (steps in bench/README.md, "GPU check"), in three modes:
#
#   bash bench/gpu_check.sh fetch [DIR]  here, with PyPI: pycuda's sdist and the wheels the GPU
#                                        machine lacks (Python 3.12, manylinux x86-64) into DIR
#                                        (default .gpu_deps, ignored by git)
#   bash bench/gpu_check.sh dry [DIR]    here: every step that needs no GPU (unpack, configure and
#                                        build pycuda, install the pure-Python wheels, build graphc)
#   bash bench/gpu_check.sh run [DIR]    on the lent GPU machine (no network), from the device
#                                        tool with carry=[".gpu_deps"]: the same steps, then the
#                                        GPU tests and bench/gpu_rows.py, all within ~9.5 minutes
#
# Results go to $OUT (the device tool's output folder, at most 8 files) or ./gpu_check_out.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}; dir=${2:-.gpu_deps}
PY=${GPU_PYTHON:-python3}
case "$mode" in fetch|dry|run) ;; *) echo "usage: bash bench/gpu_check.sh fetch|dry|run [DIR]" >&2; exit 2;; esac

if [[ "$mode" == fetch ]]; then
    mkdir -p "$dir"
    # pycuda has no binary wheel: its sdist, built there against the machine's CUDA toolkit
    $PY -m pip download -q --no-deps --no-binary pycuda pycuda -d "$dir" || exit 1
    # What the GPU machine's Python 3.12 lacks (it has numpy, sympy, jinja2, typing-extensions,
    # markupsafe, nvidia-cublas, pytest): graphc's cffi and BLAS, pycuda's pure-Python needs.
    plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    $PY -m pip download -q --no-deps --only-binary :all: --python-version 3.12 --implementation cp \
        "${plat[@]}" cffi pycparser scipy-openblas32 pytools platformdirs mako siphash24 \
        -d "$dir" || exit 1
    ls -l "$dir"; du -sh "$dir"; exit 0
fi

[[ -d "$dir" ]] || { echo "no $dir: run 'bash bench/gpu_check.sh fetch $dir' first" >&2; exit 2; }
dir=$(cd "$dir" && pwd)
deadline=$(( $(date +%s) + ${GPU_CHECK_SECONDS:-570} ))
out=${OUT:-$PWD/gpu_check_out}; mkdir -p "$out"
summary="$out/summary.txt"; : > "$summary"
log() { echo "== $(date +%T) $*" | tee -a "$summary"; }
# A step's time limit: its own, or what is left before the deadline (less a margin).
limit() { local left=$(( deadline - $(date +%s) - 10 )); echo $(( left < $1 ? (left > 1 ? left : 1) : $1 )); }

# The toolkit: the first of these with cuda.h (nvcc may be a wrapper script in /usr/local/bin).
nvcc_bin=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
for home in "${CUDA_HOME:-}" "$(dirname "$(dirname "$(readlink -f "$nvcc_bin")")")" \
        /usr/local/cuda $(ls -d /usr/local/cuda-* 2>/dev/null | sort -rV); do
    [[ -n "$home" && -f "$home/include/cuda.h" ]] && { CUDA_HOME=$home; break; }
done
export CUDA_HOME
export CUDA_ROOT=$CUDA_HOME PATH=$CUDA_HOME/bin:$PATH
export GRAPHC_CACHE_DIR=$(mktemp -d) PYTHONUNBUFFERED=1
log "mode $mode, python $($PY -V 2>&1), CUDA_HOME=$CUDA_HOME, $(nproc) CPUs"
[[ "$mode" == run ]] && { nvidia-smi -L 2>&1 | tee -a "$summary"; }

# 1. Wheels into a private site directory (pip installs nothing else: --no-index --no-deps).
site=/tmp/gpu_check_site; rm -rf "$site"; mkdir -p "$site"
wheels=("$dir"/*.whl)
if [[ "$mode" == dry ]]; then  # this Python may not be 3.12: its own cffi serves; pure ones only
    wheels=("$dir"/*-py3-none-any.whl)
fi
$PY -m pip install -q --no-index --no-deps --no-compile --target "$site" "${wheels[@]}" \
    > "$out/build.log" 2>&1
log "wheels: rc=$? (${#wheels[@]} into $site)"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"

# 2. pycuda from its sdist: configured for this toolkit, built in place on every CPU. libcuda is
#    the driver's (libcuda.so.1, no unversioned name on these machines): linked through a link of
#    our own; in a dry run, a stub (the build is checked, not run). curand is left out (unused).
src=$(ls -d /tmp/gpu_check_pycuda/pycuda-* 2>/dev/null | head -1)
if [[ -z "$src" ]]; then
    mkdir -p /tmp/gpu_check_pycuda && tar xzf "$dir"/pycuda-*.tar.gz -C /tmp/gpu_check_pycuda
    src=$(ls -d /tmp/gpu_check_pycuda/pycuda-* | head -1)
fi
drv=/tmp/gpu_check_cudadrv; mkdir -p "$drv"
libcuda=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 .*x86-64/ {print $NF; exit}')
for d in /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu "$CUDA_HOME/lib64/stubs" "$CUDA_HOME/targets/x86_64-linux/lib/stubs"; do
    [[ -z "$libcuda" ]] && for f in "$d/libcuda.so.1" "$d/libcuda.so"; do [[ -e "$f" ]] && { libcuda=$f; break; }; done
done
if [[ -n "$libcuda" ]]; then
    ln -sf "$libcuda" "$drv/libcuda.so"
elif [[ "$mode" == dry ]]; then
    echo 'void gc_stub(void) {}' > "$drv/stub.c" && gcc -shared -fPIC "$drv/stub.c" -o "$drv/libcuda.so"
fi
log "pycuda: $src, libcuda ${libcuda:-(stub)}"
(cd "$src" && rm -f siteconf.py && $PY configure.py --cuda-root="$CUDA_HOME" \
    --cudadrv-lib-dir="$drv" --cudart-lib-dir="$CUDA_HOME/lib64" --no-cuda-enable-curand \
    && timeout "$(limit 300)" $PY setup.py build_ext --inplace -j "$(nproc)") >> "$out/build.log" 2>&1
log "pycuda build: rc=$? (build.log)"
export PYTHONPATH="$src:$PYTHONPATH"

# 3. graphc's extension, compiled templates and runtime library, for this Python.
timeout "$(limit 120)" $PY setup.py build_ext --inplace -q >> "$out/build.log" 2>&1
log "graphc build_ext: rc=$?"
$PY -c "import pycuda, graphc; print('imports: pycuda', pycuda.VERSION_TEXT, '| graphc ok')" 2>&1 | tee -a "$summary"
if [[ "$mode" == dry ]]; then
    timeout "$(limit 120)" $PY -m pytest -q -p no:cacheprovider -rs tests/test_cuda_gpu.py \
        > "$out/gpu_tests.txt" 2>&1
    log "GPU suite without a GPU (skips, naming what is missing): rc=$? ($(tail -1 "$out/gpu_tests.txt"))"
    grep -m3 SKIPPED "$out/gpu_tests.txt" | tee -a "$summary"
    log "dry run done: the GPU steps follow in 'run'"; exit 0
fi

# 4. On the device: the GPU suite and the nvcc tests, the op tests with target=cuda, the rows.
$PY -c "import pycuda.driver as d; d.init(); print(d.Device(0).name(), d.Device(0).compute_capability())" \
    2>&1 | tee -a "$summary"
# (-s: the suite prints the per-call overhead and the device profile of a training step; the
# suite has chunked convolution, event profiling and vector loads; the loop file's nvcc test
# builds the profiling build of a scan)
log "GPU suite and nvcc tests"
timeout "$(limit 150)" $PY -m pytest -q -s -p no:cacheprovider -rs tests/test_cuda_gpu.py \
    tests/test_cuda_target_compile.py tests/test_cuda_reduce_split.py \
    "tests/test_cuda_kernels_loop.py::test_nvcc_compiles_loops_for_sm_90" > "$out/gpu_tests.txt" 2>&1
log "GPU suite: rc=$? ($(tail -1 "$out/gpu_tests.txt"))"
log "per-target op tests on cuda (time-boxed)"
timeout "$(limit 90)" $PY -m pytest -q -p no:cacheprovider -x tests/test_ops.py -k cuda \
    > "$out/op_tests_cuda.txt" 2>&1
log "op tests: rc=$? ($(tail -1 "$out/op_tests_cuda.txt"))"
log "GPU bench rows"
timeout "$(limit 200)" $PY bench/gpu_rows.py --quick --out "$out/gpu_rows.json" > "$out/gpu_rows.txt" 2>&1
log "bench: rc=$?"
tee -a "$summary" < "$out/gpu_rows.txt"
# 5. NVIDIA's race checker on a training step, with what time is left: on the device, what the
#    emulator's checker (GRAPHC_CUDA_RACECHECK=1, tests/test_cuda_racecheck.py) finds without one.
san=$(command -v compute-sanitizer || echo "$CUDA_HOME/bin/compute-sanitizer")
if [[ -x "$san" ]]; then
    log "compute-sanitizer racecheck of a training step (time-boxed)"
    timeout "$(limit 120)" "$san" --tool racecheck --racecheck-report hazard --error-exitcode 3 \
        $PY -m pytest -q -x -p no:cacheprovider tests/test_cuda_gpu.py \
        -k "cublas_training_steps and float32" > "$out/racecheck_gpu.txt" 2>&1
    log "racecheck on the device: rc=$? ($(grep -m1 -E 'SUMMARY' "$out/racecheck_gpu.txt"))"
else
    log "no compute-sanitizer: the device race check is skipped"
fi
log "done"
