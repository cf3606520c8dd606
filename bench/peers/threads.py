"""The environment that caps every peer's thread pools at n threads, for a child process (set
before any library starts its pool).

graphc, torch (eager and inductor's code) and the BLAS read OMP_NUM_THREADS and their own
variables. JAX's CPU client (jaxlib 0.10) sizes its thread pools from NPROC, else from the CPUs
the process may use: XLA_FLAGS=--xla_cpu_multi_thread_eigen=false alone still leaves XLA's
thunk runtime running ops on several threads (measured: four threads busy on a 2-core machine,
one with NPROC=1), so NPROC is set too, and the Eigen flag kept for older jaxlibs."""
from __future__ import annotations

POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                  "VECLIB_MAXIMUM_THREADS", "NPROC")


def thread_env(n, xla_flags=""):
    """{variable: value} for n threads; xla_flags: the XLA_FLAGS already set, kept."""
    if int(n) < 1:
        raise ValueError(f"thread count must be >= 1, got {n!r}")
    env = {k: str(int(n)) for k in POOL_VARIABLES}
    if int(n) == 1:
        env["XLA_FLAGS"] = (xla_flags + " --xla_cpu_multi_thread_eigen=false").strip()
    return env
