"""Ahead-of-time export: compiled functions -> a standalone shared library with a C header.

    f_infer = G.function([x], probs)
    f_train = G.function([x, y], loss, updates=updates)
    G.aot.export({"infer": f_infer, "train_step": f_train}, "dist/lenet", name="lenet")

writes dist/lenet/: liblenet.so, lenet.h (the whole C interface, documented), lenet.params (the
values of every shared variable at export), libscipy_openblas.so (the BLAS, when a function
uses it, found through rpath $ORIGIN, so the folder can be moved), main.c + Makefile (an example driver), README.txt,
and src/ (the library's C source, to rebuild it with `make lib`).

Each exported function is the same Program graphc.function runs (the same kernels and memory
plan), rendered by render_program as one static entry function; the C around them (the context,
parameter storage, argument checks, updates) comes from templates/c/aot_*.j2.
"""
import math
import os
import re
import shutil
import subprocess
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import sympy

from .cprinter import C_TYPES, int_to_c
from ...codegen.plan import build_program
from .capabilities import C_CAPABILITIES
from . import conv_library
from .render_c import environment, gemm_prefixes, render_program, uses_packed_gemm
from .toolchain import blas_info, cflags
from ...config import config
from ...errors import CompileError, GraphcTypeError
from ...ir.types import size_of
from ...runtime.function import Function
from .params_file import (DTYPE_CODES, MAX_NDIM, PARAMS_ALIGN, PARAMS_MAGIC,  # noqa: F401
                          PARAMS_VERSION, ParamsFileError, load_params, save_params)

__all__ = ["export", "save_params", "load_params", "Export", "PARAMS_MAGIC", "DTYPE_CODES",
           "ParamsFileError"]

MAX_DIM = 2**31 - 1  # BLAS here takes 32-bit sizes

# C names the generated code uses itself; parameter names must not shadow them.
_C_KEYWORDS = set("""auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof static struct switch
typedef union unsigned void volatile while _Bool _Complex _Imaginary _Alignas _Alignof _Atomic
_Generic _Noreturn _Static_assert _Thread_local bool true false NULL ctx int64_t int32_t uint8_t
size_t""".split())
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# lib<name>.so beside the example would shadow these system libraries (-lm finds ./libm.so).
_SYSTEM_LIBRARIES = set("""c m dl rt pthread util resolv nsl anl crypt gcc gcc_s stdc++ atomic gomp
omp iomp5 quadmath gfortran ssp asan ubsan tsan lsan z bz2 lzma zstd ffi ssl crypto blas lapack
cblas openblas mkl_rt python3 mvec BrokenLocale thread_db cuda cudart nvrtc""".split())
# (gcc's macro for an instruction set extension, its name in __builtin_cpu_supports): the
# extensions <name>_create checks for when -march enabled them (templates/c/aot_wrapper.j2).
CPU_FEATURES = [(f"__{m}__", f) for m, f in [
    ("SSE3", "sse3"), ("SSSE3", "ssse3"), ("SSE4_1", "sse4.1"), ("SSE4_2", "sse4.2"),
    ("SSE4A", "sse4a"), ("POPCNT", "popcnt"), ("AVX", "avx"), ("AVX2", "avx2"), ("FMA", "fma"),
    ("F16C", "f16c"), ("BMI", "bmi"), ("BMI2", "bmi2"), ("MOVBE", "movbe"), ("AES", "aes"),
    ("PCLMUL", "pclmul"), ("GFNI", "gfni"), ("VPCLMULQDQ", "vpclmulqdq"), ("AVXVNNI", "avxvnni"),
    ("AVX512F", "avx512f"), ("AVX512VL", "avx512vl"), ("AVX512BW", "avx512bw"),
    ("AVX512DQ", "avx512dq"), ("AVX512CD", "avx512cd"), ("AVX512ER", "avx512er"),
    ("AVX512PF", "avx512pf"), ("AVX512VBMI", "avx512vbmi"), ("AVX512IFMA", "avx512ifma"),
    ("AVX512VNNI", "avx512vnni"), ("AVX512VBMI2", "avx512vbmi2"), ("AVX512BITALG", "avx512bitalg"),
    ("AVX512VPOPCNTDQ", "avx512vpopcntdq"), ("AVX512BF16", "avx512bf16"),
    ("AVX512FP16", "avx512fp16")]]


# --- export ---------------------------------------------------------------------------------------

@dataclass
class Export:
    """Where an export put its files."""
    directory: str
    name: str
    library: str
    header: str
    params: str
    example: str
    functions: list
    param_names: list
    build_command: list = field(default_factory=list)


def _c_string(text):
    """A C string literal for any text (non-ASCII bytes as octal escapes)."""
    out = []
    for byte in text.encode():
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127 and ch != "?":  # '?' escaped: no trigraphs
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _literal(v, dtype):
    if dtype in ("float32", "float64"):
        f = float(v)
        if math.isnan(f):
            return "NAN"
        if math.isinf(f):
            return "INFINITY" if f > 0 else "(-INFINITY)"
        return float.hex(f) + ("f" if dtype == "float32" else "")
    if dtype == "bool":
        return "1" if v else "0"
    i = int(v)
    if dtype == "int64":
        return "(-INT64_MAX - 1)" if i == -2**63 else f"INT64_C({i})"
    return "(-2147483647 - 1)" if i == -2**31 else str(i)


class _Names:
    """Unique C identifiers for one function's parameters."""

    def __init__(self):
        self.taken = set()

    def take(self, wanted, fallback):
        name = wanted if (wanted and _IDENT.match(wanted) and wanted not in _C_KEYWORDS
                          and not wanted.startswith(("gc_", "d_", "_"))) else fallback
        base, k = name, 2
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name


def _shape_doc(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _program_of(fn):
    program = getattr(fn.program, "program", None)  # a C executable keeps its kernel Program
    if program is not None:
        return program  # exactly what graphc.function runs
    return build_program(fn.fgraph, fn.checker, C_CAPABILITIES)


def _check_symbols(expr, allowed, what):
    if isinstance(expr, int):
        return
    free = sympy.sympify(expr).free_symbols - set(allowed)
    if free:
        raise CompileError(f"aot: {what} depends on the sizes {sorted(map(str, free))}, which are "
                           "not arguments of the function")


def _function_info(lib, fn_name, fn, program, param_index, scratch_base):
    fg = fn.fgraph
    syms = list(program.dim_symbols)
    names = _Names()
    info = {"fn": fn_name, "cname": f"{lib}_{fn_name}", "prefix": f"gc_fn_{fn_name}_",
            "n_ext": max(1, len(program.externals)), "dims": [], "inputs": [], "shared": [],
            "consts": [], "outputs": [], "updates": [], "in_place": [], "checks": []}
    for k, s in enumerate(syms):
        info["dims"].append({"name": s.name, "sym": s.name,
                             "cname": names.take(s.name, f"dim{k}")})

    def arg(b, var, kind, k):
        if len(b.shape) > MAX_NDIM:
            raise CompileError(f"aot: {fn_name}: {kind} {k} has rank {len(b.shape)}; at most "
                               f"{MAX_NDIM} is supported")
        for d in b.shape:
            _check_symbols(d, syms, f"{fn_name}: the shape of {kind} {k}")
        label = var.name if var is not None and var.name else ""
        fallback = f"in{k}" if kind == "input" else f"out{k}"
        cname = names.take(label if kind == "input" else "", fallback)
        return {"cname": cname, "label": label or cname, "ctype": C_TYPES[b.dtype],
                "dtype": b.dtype, "slot": b.slot, "ndim": len(b.shape),
                "shape_c": [int_to_c(d) for d in b.shape], "shape_doc": _shape_doc(b.shape),
                "size_c": int_to_c(size_of(b.shape)), "kind": kind}

    by_role = {}
    for b in program.externals:
        by_role.setdefault(b.role, []).append(b)
    for k, (b, v) in enumerate(zip(by_role.get("input", []), fg.inputs)):
        info["inputs"].append(arg(b, v, "input", k))
    for b, sv in zip(by_role.get("shared", []), fg.shareds):
        info["shared"].append({"slot": b.slot, "index": param_index[sv]})
    for k, b in enumerate(by_role.get("const", [])):
        value = np.ascontiguousarray(b.value, dtype=b.dtype)
        flat = value.reshape(-1)
        init = ", ".join(_literal(x, b.dtype) for x in flat.tolist()) or "0"
        info["consts"].append({"slot": b.slot, "cname": f"gc_const_{fn_name}_{k}",
                               "ctype": C_TYPES[b.dtype], "count": max(1, flat.size),
                               "init": init, "doc": b.name})
    n_user = fg.n_user_outputs
    # The caller's output pointers: the external output slots, in graph output order. (An
    # update the memory planner made in place writes into its shared variable instead, and its
    # output slot stays unused.)
    out_ext = by_role.get("output", [])
    outs = program.output_buffers
    in_place = getattr(program, "in_place_updates", {}) or {}
    graph_outputs = getattr(fg, "outputs", None)  # (a warm-compiled Function keeps no nodes)
    for k in range(n_user):
        info["outputs"].append(arg(outs[k], graph_outputs[k] if graph_outputs else None,
                                   "output", k))
        info["outputs"][-1]["slot"] = out_ext[k].slot
    n_scratch = 0
    for j, sv in enumerate(fg.update_targets):
        b = outs[n_user + j]
        if n_user + j in in_place:
            info["in_place"].append(param_index[sv])
            continue
        static = [int(d) if sympy.sympify(d).is_Integer else None for d in b.shape]
        if static != [int(d) for d in sv.type.shape]:
            raise CompileError(f"aot: {fn_name}: the update of {sv.label()} has shape "
                               f"{_shape_doc(b.shape)}, expected {sv.type.shape}")
        info["updates"].append({"slot": out_ext[n_user + j].slot, "index": param_index[sv],
                                "scratch": scratch_base + n_scratch, "nbytes": int(b.nbytes)})
        n_scratch += 1
    seen = set()
    for a, b, msg in fn.checker.runtime_checks:  # dims that must agree, checked per call
        if (str(a), str(b)) in seen:
            continue
        seen.add((str(a), str(b)))
        _check_symbols(a, syms, f"{fn_name}: a size check")
        _check_symbols(b, syms, f"{fn_name}: a size check")
        info["checks"].append({"lhs": int_to_c(a), "rhs": int_to_c(b), "doc": f"{a} == {b}",
                               "msg": _c_string(f"{msg}: {a} must equal {b}")})
    info["ndims_alloc"] = max(1, len(syms))
    info["update_names"] = [sv.label() for sv in fg.update_targets]
    return info


def _unique_param_names(shareds):
    names, taken = [], set()
    for sv in shareds:
        base = sv.label()
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        names.append(name)
    return names


def _library_flags(march):
    flags = [f for f in cflags() if not f.startswith("-I")]
    if march:
        flags = [f"-march={march}" if f.startswith("-march=") else f for f in flags]
    return flags + ["-fvisibility=hidden"]


def export(functions, out_dir, name=None, march=None, embed_params=True, profile=False):
    """Write a standalone C library for `functions` ({c_name: graphc Function}) into out_dir.

    name: the library name and the prefix of every C symbol (default: out_dir's basename).
    march: the -march the library is built for; None builds with graphc's JIT flags
        (-march=native: the machine exporting). Give e.g. "x86-64-v3" to ship to other CPUs.
    embed_params: also build the parameter values into the .so, so <name>_create(NULL) needs
        no file (the values are always written to <name>.params as well).
    profile: a profiling build (timers around each kernel, as graphc.profile's): the header
        declares <name>_profile(ctx, "function", out, n) and main.c takes -t.
    Returns an Export with the paths written.
    """
    out_dir = os.path.abspath(out_dir)
    name = name or re.sub(r"\W", "_", os.path.basename(out_dir.rstrip("/")))
    if not _IDENT.match(name or "") or name in _C_KEYWORDS:
        raise GraphcTypeError(f"aot.export: name {name!r} must be a C identifier")
    inc, lib_dir, blas_lib, _ = blas_info()
    if name in _SYSTEM_LIBRARIES or name == blas_lib or name.startswith(("python", "std")):
        raise GraphcTypeError(f"aot.export: name {name!r} would write lib{name}.so, which shadows "
                              f"the system library of that name (linking with -l{name} would find "
                              "it); choose another name, e.g. name=\"model\"")
    if not isinstance(functions, dict) or not functions:
        raise GraphcTypeError("aot.export: functions must be a non-empty dict {name: function}")
    for fn_name, fn in functions.items():
        if not isinstance(fn_name, str) or not _IDENT.match(fn_name):
            raise GraphcTypeError(f"aot.export: function name {fn_name!r} must be a C identifier")
        if not isinstance(fn, Function):
            raise GraphcTypeError(f"aot.export: {fn_name!r} is {type(fn).__name__}, not a "
                                  "compiled graphc function (graphc.function(...))")
        if getattr(fn.checker, "values", None) is not None:
            raise CompileError(f"aot: {fn_name}: its slices have bounds known only at run time "
                               "(x[i:j] with i, j graph scalars), which the C interface does not "
                               "compute; export a function that takes the slice as an input")

    # Every shared variable of every function, once: the context owns one copy of each.
    shareds = []
    for fn in functions.values():
        for sv in fn.fgraph.shareds:
            if sv not in shareds:
                shareds.append(sv)
    param_names = _unique_param_names(shareds)
    param_index = {sv: k for k, sv in enumerate(shareds)}

    blas_prefix = blas_info()[3]
    fns, scratch, precisions, packed_gemm = [], [], set(), False
    conv_lib = {}  # the runtime library's convs the functions use: defined in this library
    prof_total = 0  # doubles of profiling counters, all functions (profile=True)
    for fn_name, fn in functions.items():
        program = _program_of(fn)
        info = _function_info(name, fn_name, fn, program, param_index, len(scratch))
        scratch += [u["nbytes"] for u in info["updates"]]
        # (gemm_linkage "static": the library stands alone, so it defines the reductions the
        # runtime library holds for in-process programs: _reduce_helpers.j2)
        extra = {"body_only": True, "fn_name": fn_name, "gemm_linkage": "static"}
        if profile:  # the profiling build: timers around each kernel (<name>_profile reads them)
            info.update(_profile_info(program, prof_total))
            prof_total += 4 + 3 * info["prof_n"]
            extra.update(profile=True, profile_kernels=info["prof_n"],
                         profile_base=f"gc_prof_of(ctx) + {info['prof_offset']}")
        info["body"] = render_program(program, f"{name}_{fn_name}", blas_prefix,
                                      wrapper="aot_fn_prelude", entry_prefix=info["prefix"],
                                      extra=extra)
        precisions.update(gemm_prefixes(program.kernels))
        packed_gemm = packed_gemm or uses_packed_gemm(program.kernels)
        conv_library.merge(conv_lib, conv_library.conv_library(program.kernels))
        fns.append(info)
    _check_symbol_clash(name, fns)
    uses_blas = bool(precisions)

    params = []
    for sv, pname in zip(shareds, param_names):
        shape = tuple(int(d) for d in sv.type.shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(sv.dtype).itemsize
        params.append({"name": pname, "name_lit": _c_string(pname), "doc": pname,
                       "dtype": sv.dtype, "dtype_code": DTYPE_CODES[sv.dtype],
                       "ctype": C_TYPES[sv.dtype], "ndim": len(shape),
                       "shape_init": ", ".join(map(str, shape)) or "0",
                       "shape_doc": _shape_doc(shape), "size": int(np.prod(shape, dtype=np.int64)),
                       "nbytes": nbytes})

    os.makedirs(os.path.join(out_dir, "src"), exist_ok=True)
    files = {"header": f"{name}.h", "params": f"{name}.params", "library": f"lib{name}.so",
             "example": "main.c", "source": f"src/{name}.c"}
    blas_file = f"lib{blas_lib}.so"
    flags = _library_flags(march)
    build_cmd = ([config.cc] + flags + ["-I.", "-Isrc", "-Wa,-I.", "-shared", files["source"], "-o",
                 files["library"], f"-Wl,-soname,{files['library']}"]
                 + (["-L.", f"-l{blas_lib}"] if uses_blas else []) + ["-Wl,-rpath,$ORIGIN", "-lm"])
    ctx = dict(name=name, P=name.upper(), functions=fns, params=params, n_params=len(params),
               n_scratch=len(scratch), uses_blas=uses_blas, embed_params=embed_params,
               gemm_prefixes=sorted(precisions), blas_prefix=blas_prefix, gemm_linkage="static",
               packed_gemm=packed_gemm, conv_library=conv_lib,
               files=files, blas_file=blas_file, max_dim=MAX_DIM, dtype_codes=DTYPE_CODES,
               march=march or "native", lib_flags=" ".join(flags), blas_lib=blas_lib,
               magic=PARAMS_MAGIC.decode(), version=PARAMS_VERSION, align=PARAMS_ALIGN,
               fn_names=list(functions), cpu_features=CPU_FEATURES, profile=profile,
               prof_total=max(1, prof_total))
    env = environment()
    rendered = {
        files["source"]: env.get_template("c/aot_wrapper.j2").render(**ctx),
        files["header"]: env.get_template("c/aot_header.h.j2").render(**ctx),
        files["example"]: env.get_template("c/aot_main.c.j2").render(**ctx),
        "Makefile": env.get_template("c/aot_Makefile.j2").render(**ctx),
        "README.txt": env.get_template("c/aot_README.txt.j2").render(**ctx),
    }
    for rel, text in rendered.items():
        with open(os.path.join(out_dir, rel), "w") as fh:
            fh.write(text)
    save_params(os.path.join(out_dir, files["params"]),
                OrderedDict((p, sv.get_value(borrow=True)) for p, sv in zip(param_names, shareds)))
    if uses_blas:  # the BLAS ships next to the library (rpath $ORIGIN), its headers in src/
        for h in ("cblas.h", "openblas_config.h"):
            shutil.copyfile(os.path.join(inc, h), os.path.join(out_dir, "src", h))
        blas_dst = os.path.join(out_dir, blas_file)
        if not _same_file(os.path.join(lib_dir, blas_file), blas_dst):
            shutil.copyfile(os.path.join(lib_dir, blas_file), blas_dst + ".tmp")
            os.replace(blas_dst + ".tmp", blas_dst)
    proc = subprocess.run(build_cmd, cwd=out_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CompileError(f"aot: building {files['library']} failed ({' '.join(build_cmd)} in "
                           f"{out_dir}):\n{proc.stderr[-4000:]}")
    return Export(out_dir, name, os.path.join(out_dir, files["library"]),
                  os.path.join(out_dir, files["header"]), os.path.join(out_dir, files["params"]),
                  os.path.join(out_dir, files["example"]), list(functions), param_names,
                  build_cmd)


def _profile_info(program, offset):
    """Where a function's profiling counters sit in the context, and its kernels' labels."""
    labels = [f"k{k} {kern.kind} {kern.label}" for k, kern in enumerate(program.kernels)]
    return {"prof_offset": offset, "prof_n": max(1, len(labels)),
            "prof_labels": [_c_string(label) for label in labels] or ['"(no kernels)"']}


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_symbol_clash(lib, fns):
    api = {"create", "create_ex", "destroy", "last_error", "num_params", "param", "find_param",
           "get_param", "set_param", "save_params", "load_params", "param_info", "ctx",
           "profile", "profile_reset", "profile_kernel"}
    seen = {f"{lib}_{a}" for a in api}
    for f in fns:
        for sym in (f["cname"], f["cname"] + "_input_shape", f["cname"] + "_output_shape"):
            if sym in seen:
                raise GraphcTypeError(f"aot.export: the C name {sym} is used twice; rename "
                                      f"function {f['fn']!r}")
            seen.add(sym)
