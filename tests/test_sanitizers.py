"""The generated C of the op table is clean under AddressSanitizer + UndefinedBehaviorSanitizer
(issue 13, 'Done when'): sanitize_op_table.py compiles every op-table case, forward and gradient,
both dtypes, with -fsanitize=address,undefined into a cache of its own, in a subprocess that
preloads the sanitizer runtime (python itself is not instrumented), and runs it; any report
halts it. About half a minute."""
import glob
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# -O1 (given last, so it wins over the build's -O3), as the sanitizers' docs advise: it halves
# this test's compile time; valgrind checks an -O3 build (test_aot.py, an exported MLP).
SANITIZE = "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -O1"


def _runtime(name):
    """The sanitizer runtime library gcc links against, or None where it is not installed."""
    try:
        path = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return path if os.path.isabs(path) and os.path.exists(path) else None


def test_op_table_is_clean_under_asan_and_ubsan(tmp_path):
    asan = _runtime("libasan.so")
    if asan is None or _runtime("libubsan.so") is None:
        pytest.skip("gcc's AddressSanitizer/UBSan runtime (libasan, libubsan) is not installed")
    cache = tmp_path / "cache"
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache), GRAPHC_CFLAGS=SANITIZE, LD_PRELOAD=asan,
               ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
               PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE,
                                           os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "sanitize_op_table.py")], env=env,
                          cwd=HERE, capture_output=True, text=True, timeout=600)
    report = proc.stdout[-3000:] + proc.stderr[-6000:]
    assert proc.returncode == 0, report
    assert "runtime error:" not in proc.stderr and "AddressSanitizer" not in proc.stderr, report
    assert proc.stdout.count("outputs clean") == 2, report
    # the programs really were instrumented
    libraries = [p for p in glob.glob(str(cache / "**" / "*.so"), recursive=True)
                 if "dispatch" not in p]
    assert libraries, f"no compiled library under {cache}"
    symbols = subprocess.run(["nm", "-D", "--undefined-only"] + libraries, capture_output=True,
                             text=True).stdout
    assert "__asan_" in symbols and "__ubsan_handle" in symbols
