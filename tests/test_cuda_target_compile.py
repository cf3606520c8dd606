"""nvcc compiles the CUDA programs graphc renders (sm_90), on machines without a GPU: a CUDA
syntax or type error in a template fails here. Skipped with a reason where nvcc is absent."""
import os
import shutil
import subprocess

import pytest

import cuda_cases as cases
from program_cases import program_of
from graphc.errors import CompileError
from graphc.targets.cuda.render_cuda import render_program

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (the CUDA toolkit) is not installed")


def _sources():
    from graphc.targets.cuda.profiling import render_profiled
    for name, program in _programs():
        yield name, render_program(program, name)
    yield "label_probe", cases.LabelProbe().source  # a fallible kernel: the device error word
    # the profiling build (event pairs around each kernel) of a product and its update
    yield "product_profiled", render_profiled(program_of(*cases.product_graph("float64")),
                                              "product_profiled")


def _programs():
    yield "elementwise_f32", program_of(*cases.elementwise_graph("float32"))
    yield "elementwise_f64", program_of(*cases.elementwise_graph("float64"))
    yield "integers", program_of(*cases.int_graph())
    yield "product_f32", program_of(*cases.product_graph("float32"))
    yield "arange", program_of(*cases.arange_graph())


@needs_nvcc
def test_nvcc_compiles_rendered_programs_for_sm_90(tmp_path):
    from graphc.targets.cuda.toolchain import nvcc_compile_command
    procs = []
    for name, source in _sources():
        if name.startswith("product"):  # tanh(x @ w): the elementwise vector path
            assert ("float4" if name == "product_f32" else "double2") in source
        src = tmp_path / f"{name}.cu"
        src.write_text(source)
        cmd = nvcc_compile_command(str(src), str(tmp_path / f"{name}.o"), arch="sm_90")
        procs.append((name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             text=True)))
    results = [(name, p.communicate()[0], p.returncode) for name, p in procs]  # wait for all
    failed = [(name, out) for name, out, rc in results if rc != 0]
    assert not failed, "\n".join(f"{name}:\n{out[-3000:]}" for name, out in failed)
    assert all(os.path.getsize(tmp_path / f"{name}.o") > 0 for name, _ in procs)


def test_a_kind_without_a_cuda_template_is_named():
    import graphc as G
    x = G.matrix("x")
    program = program_of([x], [x.sum()])
    program.kernels[0].kind = "no_such_kind"  # (a kind no template set has)
    with pytest.raises(CompileError, match=r"target cuda cannot compile no_such_kind \(op Reduce"):
        render_program(program, "t")


@needs_nvcc
def test_nvcc_links_a_program_into_a_library_with_its_entry_points(tmp_path, monkeypatch):
    """The whole build a GPU machine runs (host code + fatbin, shared cudart), minus the run."""
    from graphc.targets.cuda import toolchain
    monkeypatch.delenv("GRAPHC_CUDA_EMULATE", raising=False)
    src = tmp_path / "p.cu"
    src.write_text(render_program(program_of(*cases.product_graph("float32")), "p"))
    toolchain.build(str(src), str(tmp_path / "p.so"))
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(tmp_path / "p.so")],
                             capture_output=True, text=True).stdout
    for entry in ("gc_run", "gc_ctx_new", "gc_ctx_free", "gc_ctx_error"):
        assert f" T {entry}" in symbols
