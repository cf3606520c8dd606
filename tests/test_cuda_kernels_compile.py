"""Every CUDA kernel template compiles with nvcc for sm_90: the whole kernel table
(cuda_kernel_table.py: the op table, the CNN ops, the pooling adjoint, random numbers, forward and
gradient) rendered as ONE .cu per dtype, both built at once. Kernels whose device code differs only
in numbers (sizes, strides, constants) are compiled once: the table's 395 kernels are ~155
distinct ones, and nvcc's time is what this test costs. Skipped with a reason where nvcc is absent;
the coverage test (every kernel kind is reached) runs everywhere."""
import dataclasses
import re
import subprocess

import pytest

from cuda_kernel_table import table_graph
from program_cases import program_of
from graphc.codegen.kernels import SPECS
from graphc.targets.c.render_c import _all_kernels
from graphc.targets.cuda import toolchain
from graphc.targets.cuda.target import CUDA_CAPABILITIES
from graphc.targets.cuda.render_cuda import environment, render_program

DTYPES = ("float32", "float64")
# Kinds that no graph of the table lowers to, and why.
NOT_IN_TABLE = {"loop": "test_cuda_kernels_loop.py runs and compiles it",
                # whole-batch im2col: both targets have an im2col budget (conv_chunked* kernels)
                "conv_im2col": "no target lowers to it", "conv_col2im": "no target lowers to it",
                "conv_winograd": "C target only", "conv_blocked": "C target only",
                "conv_blocked_grad_weights": "C target only", "pool_max_value": "C target only",
                "conv_winograd4": "C target only", "conv_winograd_grad_weights": "C target only",
                "gemm_dense_packed": "C target only"}


@pytest.fixture(scope="module")
def table_programs():
    return {dtype: program_of(*table_graph(dtype)[:2], name=f"cuda_table_{dtype}",
                              capabilities=CUDA_CAPABILITIES)
            for dtype in DTYPES}


def distinct_kernels(program):
    """The program with one kernel per distinct device code, numbers aside."""
    env, seen = environment(), {}
    for k in program.kernels:
        code = env.get_template(f"cuda/{k.kind}.cu.j2").make_module({"prefix": "gc_"}).define(k, 0)
        seen.setdefault((k.kind, re.sub(r"[0-9]+", "N", str(code))), k)
    return dataclasses.replace(program, kernels=list(seen.values()))


def test_the_table_reaches_every_kernel_kind(table_programs):
    for dtype, program in table_programs.items():
        kinds = {k.kind for k in _all_kernels(program.kernels)}
        missing = set(SPECS) - kinds - set(NOT_IN_TABLE)
        assert not missing, f"{dtype}: no case of cuda_kernel_table.py lowers to {sorted(missing)}"


@pytest.mark.skipif(toolchain.nvcc_path() is None, reason="nvcc (the CUDA toolkit) is not installed")
def test_nvcc_compiles_every_kernel_template_for_sm_90(table_programs, tmp_path):
    procs = []
    for dtype, program in table_programs.items():
        src = tmp_path / f"table_{dtype}.cu"
        src.write_text(render_program(distinct_kernels(program), f"cuda_table_{dtype}"))
        cmd = toolchain.nvcc_compile_command(str(src), str(tmp_path / f"table_{dtype}.o"), arch="sm_90")
        procs.append((dtype, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                              text=True)))
    results = [(dtype, p.communicate()[0], p.returncode) for dtype, p in procs]  # wait for both
    failed = [f"{dtype}:\n{out[-4000:]}" for dtype, out, rc in results if rc != 0]
    assert not failed, "\n".join(failed)
