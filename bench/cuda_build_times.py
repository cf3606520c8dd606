"""How long nvcc takes to build graphc's CUDA programs (issue 11: the MLP step's 25 kernels
took 15 s, LeNet's 58 took 34 s), one unit vs the program split over translation units built in
parallel, and what nvcc's flags cost. Needs nvcc, no GPU: the programs are rendered on the CPU
execution model (GRAPHC_CUDA_EMULATE=1, which also builds and runs them once) and then built
with nvcc as a GPU machine would.

    python bench/cuda_build_times.py [--units 1,2,4,8] [--only mlp,lenet] [--flags]

Prints one line per (program, units) with the wall seconds of the whole build (compile + link).
--flags adds single-unit builds with other nvcc flags (host optimization, SASS only). Timings on
a shared machine are noisy: run twice."""
import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ["GRAPHC_CUDA_EMULATE"] = "1"
os.environ["GRAPHC_TARGET"] = "cuda"

import graphc as G  # noqa: E402
from bench import graphc_impl  # noqa: E402

FLAG_VARIANTS = {  # (extra compile flags, -gencode code list) against the default build's
    "host -O3, SASS+PTX (graphc before)": (["-O3"], "[sm_90,compute_90]"),
    "host default, SASS+PTX (graphc now)": ([], "[sm_90,compute_90]"),
    "host default, SASS only": ([], "sm_90"),
    "host default, SASS+PTX, -Xptxas -O1": (["-Xptxas", "-O1"], "[sm_90,compute_90]"),
}


def program_of(which):
    """The kernel Program of a bench step compiled for cuda (emulated)."""
    compiled = []
    real = G.function

    def keep(*args, **kwargs):
        compiled.append(real(*args, **kwargs))
        return compiled[-1]
    G.function = keep
    try:
        getattr(graphc_impl, f"{which}_step")()
    finally:
        G.function = real
    return compiled[-1].program.program


def timed_build(program, units, workdir, flags=None):
    """Seconds to build `program` rendered as `units` translation units (as the CUDA target
    does), or as one unit with the nvcc `flags` variant (extra flags, -gencode code list)."""
    import subprocess
    from graphc.targets.cuda import render_cuda, toolchain
    sources = render_cuda.render_units(program, "bench", units)
    paths = []
    for u, source in enumerate(sources):
        paths.append(os.path.join(workdir, f"p{units}.{u}.cu"))
        with open(paths[-1], "w") as fh:
            fh.write(source)
    os.environ.pop("GRAPHC_CUDA_EMULATE")  # build for a device
    try:
        t = time.perf_counter()
        if flags is None:
            toolchain.build_units(paths, os.path.join(workdir, f"p{units}.so"))
        else:
            extra, code = flags
            obj = os.path.join(workdir, "flags.o")
            subprocess.run([toolchain.nvcc_path(), "-c", "-std=c++17", "-Xcompiler", "-fPIC",
                            *extra, f"-gencode=arch=compute_90,code={code}",
                            *toolchain._NVCC_QUIET, paths[0], "-o", obj],
                           check=True, capture_output=True)
            subprocess.run(toolchain.link_command([obj], os.path.join(workdir, "flags.so")),
                           check=True, capture_output=True)
        return time.perf_counter() - t, len(sources)
    finally:
        os.environ["GRAPHC_CUDA_EMULATE"] = "1"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", default="1,2,4,8")
    ap.add_argument("--only", default="mlp,lenet")
    ap.add_argument("--flags", action="store_true")
    args = ap.parse_args()
    for which in args.only.split(","):
        program = program_of(which)
        n = len(program.kernels)
        with tempfile.TemporaryDirectory() as workdir:
            for units in [int(u) for u in args.units.split(",")]:
                seconds, made = timed_build(program, units, workdir)
                print(f"{which}: {n} kernels, {made} unit(s) (asked {units}): {seconds:.1f} s",
                      flush=True)
            if args.flags:
                for label, flags in FLAG_VARIANTS.items():
                    seconds, _ = timed_build(program, 1, workdir, flags)
                    print(f"{which}: 1 unit, {label}: {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
