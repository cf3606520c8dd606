"""Small graphs whose Programs only use the kernel kinds cuda-core templates (elemwise, fill,
copy, arange, gemm), for the CUDA target's compile and emulation tests."""
import os

import numpy as np
import pytest

import graphc as G


def elementwise_graph(dtype):
    x, y = G.matrix("x", dtype=dtype), G.vector("y", dtype=dtype)
    return [x, y], [G.exp(x) * 2 + y, G.sigmoid(x) // 3 - G.maximum(x, y) % 2.5]


def int_graph(dtype="int64"):
    a, b = G.vector("a", dtype=dtype), G.vector("b", dtype=dtype)
    return [a, b], [a // b + a % b, G.maximum(a, b) * 3]


def product_graph(dtype):
    x = G.matrix("x", dtype=dtype)
    w = G.shared(np.linspace(-1, 1, 12).reshape(3, 4).astype(dtype), name="w")
    return [x], [G.tanh(x @ w), x]  # x again: an output copy


def arange_graph():
    n = G.dim("n")
    v = G.vector("v", shape=(n,), dtype="int64")
    return [v], [v + G.arange(n), G.arange(5, dtype="float32")]


class LabelProbe:
    """A Program with a test-only fallible kernel kind (tests/templates/cuda/probe_check.cu.j2:
    labels must lie in [0, 3)) before an in-place update of a shared variable `w`, rendered with
    the CUDA templates; `check_runs()` builds it for the current mode and checks the error path.
    units > 1: rendered as that many translation units (one kernel each), built in parallel."""

    def __init__(self, units=1):
        import jinja2
        from graphc.codegen.kernels import SPECS, KernelSpec
        from graphc.codegen.plan import build_program
        from graphc.codegen.program import Kernel
        from graphc.targets.c.cache_trust import check_file, private_dir
        from graphc.targets.c.jinja_env import make_environment
        from graphc.targets.c.templates_dir import templates_root
        from graphc.targets.cuda import render_cuda
        from graphc.targets.cuda.target import CUDA_CAPABILITIES
        labels = G.vector("labels", dtype="int64")
        self.w = G.shared(np.ones(4, "float32"), name="w")
        self.fn = G.function([labels], labels * 2, updates=[(self.w, self.w + 1)], backend="py")
        self.program = build_program(self.fn.fgraph, self.fn.checker, CUDA_CAPABILITIES)
        buf = next(b for b in self.program.externals if b.role == "input")
        self.program.kernels.insert(0, Kernel("probe_check", [], [buf], {"n": buf.shape[0], "limit": 3},
                                              label="check labels"))
        env = make_environment(templates_root(), private_dir("jinja-cuda-test"), None,
                               filters=render_cuda.CUDA_FILTERS, check_file=check_file)
        env.loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")), env.loader])
        # the test-only kind has a spec while it is rendered, like every kind (renderers read
        # its traits); it is taken out again, so no other test sees a kind with no C template
        SPECS["probe_check"] = KernelSpec("probe_check", ("n", "limit"), fallible=True)
        try:
            if units == 1:
                self.sources = [render_cuda.render_program(self.program, "probe", env=env)]
            else:
                self.sources = render_cuda.render_units(self.program, "probe", units, env=env,
                                                        min_unit_kernels=1)
        finally:
            del SPECS["probe_check"]
        self.source = "\n".join(self.sources)

    def check_runs(self):
        from graphc.errors import RuntimeCheckError
        from graphc.targets.c.cache_trust import private_dir
        from graphc.targets.cuda import toolchain
        from graphc.targets.cuda.executable import CudaProgram
        directory = private_dir("cuda-test")
        stem = f"probe{len(self.sources)}{'_emu' if toolchain.emulating() else ''}"
        srcs = [os.path.join(directory, f"{stem}.{u}.cu") for u in range(len(self.sources))]
        for src, source in zip(srcs, self.sources):
            with open(src, "w") as fh:
                fh.write(source)
        src = srcs[0][:-len(".0.cu")] + ".cu"
        toolchain.build_units(srcs, src[:-3] + ".so")
        prog = CudaProgram(self.program, self.source, src[:-3] + ".so", self.fn.fgraph)
        fg = self.fn.fgraph

        def run(v):
            return prog.run_shared(self.fn.checker, [np.array(v)], fg.shareds, fg.update_targets, 1)
        np.testing.assert_array_equal(run([0, 2, 1])[0], [0, 4, 2])
        np.testing.assert_array_equal(self.w.get_value(), 2)
        with pytest.raises(RuntimeCheckError, match=r"label out of range: 7 at position 1, for 3 "
                                                    r"classes in check labels"):
            run([0, 7, 1])
        np.testing.assert_array_equal(self.w.get_value(), 2)  # the failed call changed nothing
        np.testing.assert_array_equal(run([1, 1, 1])[0], [2, 2, 2])  # the error word was reset
        np.testing.assert_array_equal(self.w.get_value(), 3)
