"""ONNX's own backend node tests, run through graphc.onnx.backend for the operators graphc
imports. The installed onnx package generates the cases (inputs, expected outputs) itself; only
the modules that exercise a supported operator are imported, which keeps this cheap.

    python -m graphc.onnx.conformance [--target c|py] [--ops Relu,Conv] [--no-float64] [-v]

runs each case as ONNX wrote it and, where it is float32, as a float64 twin (every float tensor
widened; "_float64" names it), and prints one row per operator (cases passed / run, skipped with the reason, the first failure)
and the total. A case is skipped when load() declines the model with OnnxUnsupported (a dtype
graphc lacks, an attribute it does not implement): the reason is printed. EXPECTED_FAILURES
lists the cases that load but whose results differ from ONNX's, each with why. float16 cases
run computed in float32, cast to and from float16 at the backend's boundary.
"""
import argparse
import dataclasses
import importlib
import os
import re
import sys
import time
from collections import defaultdict

import numpy as np

# Cases that load and run but do not match ONNX's expected outputs, and why (none at present:
# max / min over an empty axis, an error in graphc's own ops as in numpy's, is imported as ONNX
# defines it, convert_reduce._extreme_of_nothing).
EXPECTED_FAILURES = {}


# Cases whose expected outputs come from numpy's random generator (training-mode Dropout):
# graphc draws from its own Philox streams, so these check what does not depend on the draw:
# every output is 0 or x / (1 - ratio), the mask output says which, and about `ratio` of the
# elements are dropped.
RANDOM_CASES = ("test_training_dropout",)


def _node_dir():
    import onnx.backend.test.case.node as pkg
    return os.path.dirname(pkg.__file__)


def collect_cases(ops=None, exclude=()):
    """ONNX's node test cases whose every node is an operator graphc imports (or `ops`), less
    the operators in `exclude`."""
    from onnx.backend.test.case.node import _NodeTestCases
    from .registry import supported_ops
    wanted = set(ops or supported_ops()) - set(exclude)
    made = re.compile(r'make_node\(\s*"(\w+)"')
    for fname in sorted(os.listdir(_node_dir())):
        if not fname.endswith(".py") or fname.startswith("_"):
            continue
        with open(os.path.join(_node_dir(), fname)) as f:
            found = set(made.findall(f.read()))
        if found & wanted or fname[:-3] in {w.lower() for w in wanted}:  # parse_node cases
            try:
                importlib.import_module(f"onnx.backend.test.case.node.{fname[:-3]}")
            except Exception:  # noqa: BLE001  (a generator needing what this machine lacks)
                continue
    seen, cases = set(), []
    for case in _NodeTestCases:
        if case.model is None or case.name in seen:
            continue
        seen.add(case.name)
        types = {n.op_type for n in case.model.graph.node}
        if types <= wanted:
            cases.append(upgraded(case) if types & UPGRADED_OPS else case)
    return cases


# ONNX wrote the control-flow cases for opsets 8-11, before graphc's first (13); their meaning
# for tensors is unchanged since, so they run converted by onnx.version_converter ("_opset13").
UPGRADED_OPS = {"If", "Loop", "Scan"}


def upgraded(case):
    from onnx import version_converter
    from .importer import default_opset
    if not 9 <= (default_opset(case.model) or 13) < 13:
        return case  # (Scan-8 had a batch axis: a different operator)
    try:
        model = version_converter.convert_version(case.model, 13)
    except Exception:  # noqa: BLE001  (not convertible: load() then says which opset it is)
        return case
    return dataclasses.replace(case, name=case.name + "_opset13", model=model)


def as_float64(case):
    """The case with every float32 tensor (inputs, outputs, initializers, constants) in float64,
    or None when its meaning depends on the type (casts)."""
    from onnx import ModelProto, TensorProto, numpy_helper
    types = {n.op_type for n in case.model.graph.node}
    if types & {"Cast", "CastLike"}:
        return None
    m = ModelProto()
    m.CopyFrom(case.model)
    if not _widen_graph(m.graph):
        return None

    def widen(arrays):
        out = []
        for a in arrays:
            a = numpy_helper.to_array(a) if isinstance(a, TensorProto) else np.asarray(a)
            out.append(a.astype("float64") if a.dtype == np.float32 else a)
        return out

    data = [(widen(i), widen(o)) for i, o in case.data_sets]
    return dataclasses.replace(case, name=case.name + "_float64", model=m, data_sets=data)


def _widen_graph(g):
    """float32 -> float64 in place over a graph's value infos, initializers and constants, its
    subgraphs' (If branches, loop bodies) too; whether any float32 tensor was found."""
    from onnx import TensorProto, numpy_helper
    found = False
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
            found = True
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype("float64"), t.name))
    for n in g.node:
        for a in n.attribute:
            if a.type == a.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype("float64"), a.t.name))
            elif a.type == a.GRAPH:
                found = _widen_graph(a.g) or found
    return found


def case_op(case):
    types = [n.op_type for n in case.model.graph.node]
    return types[0] if len(types) == 1 else "(function-expanded)"


def run_case(case, target):
    """("pass" | "skip" | "fail", reason)."""
    from .backend import GraphcBackend
    from .proto import OnnxError, OnnxUnsupported
    try:
        rep = GraphcBackend.prepare(case.model, target=target)
    except OnnxUnsupported as e:
        return "skip", e.problems[0]
    except OnnxError as e:
        return "skip", str(e).splitlines()[0]
    except Exception as e:  # noqa: BLE001  (a failure to report, not to stop the table)
        return "fail", f"prepare: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    from onnx import TensorProto, numpy_helper
    for inputs, expected in case.data_sets:
        inputs = [numpy_helper.to_array(a) if isinstance(a, TensorProto) else a for a in inputs]
        expected = [numpy_helper.to_array(a) if isinstance(a, TensorProto) else a for a in expected]
        try:
            outs = rep.run(inputs)
        except OnnxUnsupported as e:  # a model specialized on its integer inputs at run
            return "skip", e.problems[0]
        except Exception as e:  # noqa: BLE001
            return "fail", f"run: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if case.name.startswith(RANDOM_CASES):
            problem = check_dropout(inputs, outs, expected)
            if problem:
                return "fail", problem
            continue
        for k, (want, got) in enumerate(zip(expected, outs)):
            want = np.asarray(want)
            if want.dtype != got.dtype:
                return "fail", f"output {k}: dtype {got.dtype}, expected {want.dtype}"
            if want.shape != got.shape:
                return "fail", f"output {k}: shape {got.shape}, expected {want.shape}"
            if not np.allclose(got, want, rtol=case.rtol, atol=case.atol, equal_nan=True):
                err = np.nanmax(np.abs(got.astype("float64") - want.astype("float64")))
                return "fail", f"output {k}: max abs error {err:.3g} (rtol {case.rtol}, atol {case.atol})"
    return "pass", ""


def check_dropout(inputs, outs, expected):
    """What a training-mode Dropout's outputs must satisfy whatever the random draw; the
    problem found, or ''."""
    x = inputs[0]
    ratio = float(inputs[1]) if len(inputs) > 1 else 0.5
    y = outs[0]
    if y.shape != x.shape or y.dtype != x.dtype:
        return f"output 0: {y.dtype}{y.shape}, expected {x.dtype}{x.shape}"
    kept = y != 0
    scaled = x / (1 - ratio)
    if not np.allclose(y[kept], scaled[kept], rtol=1e-5):
        return "output 0: a kept element is not x / (1 - ratio)"
    if len(outs) > 1:
        mask = outs[1]
        if mask.dtype != np.bool_ or mask.shape != x.shape or np.any(kept & ~mask):
            return "output 1: the mask does not match the kept elements"
        if not np.allclose(y[mask], scaled[mask], rtol=1e-5):
            return "output 1: an element the mask keeps is not x / (1 - ratio)"
    dropped = 1 - kept.mean()
    spread = 4 * np.sqrt(ratio * (1 - ratio) / x.size)
    if abs(dropped - ratio) > spread:
        return f"{dropped:.2f} of the elements dropped, ratio is {ratio}"
    return ""


def quiet_collect(ops=None, exclude=()):
    """collect_cases without the generators' numpy warnings (float8 casts, log(0), ...)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            return collect_cases(ops, exclude)


def run(target="c", ops=None, verbose=False, out=sys.stdout, exclude=(), cases=None,
        float64=True):
    """Run every case (and its float64 twin); returns {case name: (status, reason, op)}."""
    if cases is None:
        cases = quiet_collect(ops, exclude)
    if float64:
        cases = list(cases) + [c64 for c64 in map(as_float64, cases) if c64 is not None]
    results = {}
    for case in cases:
        t0 = time.perf_counter()
        status, reason = run_case(case, target)
        results[case.name] = (status, reason, case_op(case))
        if verbose:
            print(f"{status:4s} {case.name} ({time.perf_counter() - t0:.2f} s) {reason}", file=out)
    return results


def table(results):
    rows = defaultdict(lambda: {"pass": 0, "skip": 0, "fail": 0, "first_fail": "", "first_skip": ""})
    for name, (status, reason, op) in results.items():
        r = rows[op]
        r[status] += 1
        if status == "fail" and name in EXPECTED_FAILURES:
            reason = f"expected: {EXPECTED_FAILURES[name]}"
        key = "first_fail" if status == "fail" else "first_skip" if status == "skip" else None
        if key and not r[key]:
            r[key] = f"{name}: {reason}"
    lines = [f"{'op':24s} {'passed/run':>10s} {'skipped':>8s}  first failure / skip reason"]
    tot = {"pass": 0, "skip": 0, "fail": 0}
    for op in sorted(rows):
        r = rows[op]
        for k in tot:
            tot[k] += r[k]
        run_n = r["pass"] + r["fail"]
        lines.append(f"{op:24s} {r['pass']:>4d}/{run_n:<5d} {r['skip']:>8d}  "
                     f"{r['first_fail'] or r['first_skip']}")
    lines.append(f"{'total':24s} {tot['pass']:>4d}/{tot['pass'] + tot['fail']:<5d} {tot['skip']:>8d}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--target", default="c", choices=["c", "py"])
    p.add_argument("--ops", default=None, help="comma-separated operator types (default: all)")
    p.add_argument("--no-float64", action="store_true", help="skip the float64 twins of the cases")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    results = run(a.target, a.ops.split(",") if a.ops else None, a.verbose,
                  float64=not a.no_float64)
    print(table(results))
    unexpected = [n for n, (s, _, _) in results.items() if s == "fail" and n not in EXPECTED_FAILURES]
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
