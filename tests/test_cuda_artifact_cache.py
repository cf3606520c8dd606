"""The CUDA target's artifact cache (emulated): a warm compile in a new process loads the library
and neither optimizes, lowers nor renders; what shows names (the source) is rebuilt on demand."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graphc as G
from graphc.targets.c import artifact_record

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")

# A small training step with a product (the emulated gemm links the C runtime library).
STEP = textwrap.dedent("""
    import json, sys
    import numpy as np
    import graphc as G
    from graphc.targets.cuda import render_cuda
    def refuse(*args, **kwargs):
        raise AssertionError("a warm compile rendered")
    if sys.argv[1:] == ["warm"]:
        render_cuda.render_program = refuse
    x = G.matrix("x", shape=(None, 6))
    y = G.vector("y")
    w = G.shared(np.linspace(-1, 1, 6 * 3).reshape(6, 3).astype("float32"), name="w")
    cost = ((G.tanh(G.dot(x, w)).sum(axis=1) - y) ** 2).mean()
    f = G.function([x, y], cost, updates={w: w - 0.1 * G.grad(cost, w)}, target="cuda")
    rng = np.random.RandomState(0)
    X, Y = rng.randn(5, 6).astype("float32"), rng.randn(5).astype("float32")
    costs = [float(f(X, Y)) for _ in range(3)]
    timings = {k: v for k, v in f.timings.items() if isinstance(v, bool) or k == "render"}
    print(json.dumps({"timings": timings, "costs": costs, "w": w.get_value().tolist(),
                      "lib": f.program.lib_path}))
""")


def _run(cache_dir, *args):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir), GRAPHC_CUDA_EMULATE="1")
    env.pop("GRAPHC_DUMP", None)
    proc = subprocess.run([sys.executable, "-c", STEP, *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_warm_compile_in_a_new_process_only_loads_the_library(tmp_path):
    cold = _run(tmp_path, "cold")
    assert cold["timings"].get("cache_hit") is False and "artifact_hit" not in cold["timings"]
    assert "render" in cold["timings"]
    warm = _run(tmp_path, "warm")  # render_program raises in this process
    assert warm["timings"] == {"cache_hit": True, "artifact_hit": True}
    assert warm["lib"] == cold["lib"] and os.sep + "cuda" + os.sep in warm["lib"]
    np.testing.assert_array_equal(warm["costs"], cold["costs"])
    np.testing.assert_array_equal(warm["w"], cold["w"])


def test_a_warm_cuda_function_rebuilds_its_source_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CUDA_EMULATE", "1")
    monkeypatch.setattr(G.config, "cache_dir", str(tmp_path))
    x = G.vector("x")
    cold = G.function([x], G.exp(x) * 2, target="cuda")
    warm = G.function([x], G.exp(x) * 2, target="cuda")
    assert warm.timings.get("artifact_hit") and not cold.timings.get("artifact_hit")
    assert "__global__" in warm.program.source and warm.program.program is not None
    np.testing.assert_allclose(warm(np.arange(4.0, dtype="float32")),
                               np.exp(np.arange(4.0, dtype="float32")) * 2, rtol=1e-6)
    # The C target's function of the same graph is another artifact.
    c_fn = G.function([x], G.exp(x) * 2, target="c")
    assert not c_fn.timings.get("artifact_hit")


def test_the_record_names_the_libraries_to_load_from_a_fixed_set():
    layout = {"n_externals": 2, "dim_names": ["n"], "const_values": [],
              "out_specs": [("float32", (("dim", 0),))]}
    fields = dict(layout=layout, lib_key="a" * 32, lib_sha256="b" * 64, links=[],
                  arg_layout=[], shared_index=[])
    assert artifact_record.decode(artifact_record.encode(**fields, loads=["cublas"]).encode()
                                  )["loads"] == ["cublas"]
    assert artifact_record.decode(artifact_record.encode(**fields).encode())["loads"] == []
    hostile = json.loads(artifact_record.encode(**fields))
    for loads in (["/tmp/evil.so"], "cublas", [1]):
        hostile["loads"] = loads
        assert artifact_record.decode(json.dumps(hostile).encode()) is None
