"""`graphc profile SCRIPT.py:build`: the profiler's table from the shell.

build() returns what to profile: a compiled function, a (function, args) pair, or a dict of
either by name. A function given without args is called on generated inputs: normal floats,
zeros for integers (a valid index and label), symbolic dims from --dim name=value (default 32)."""
import sys

import numpy as np

from ..runtime.function import Function
from .peak import machine_peak
from .session import profile

DEFAULT_DIM = 32


def parse_dims(items):
    dims = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit() or int(value) < 1:
            raise SystemExit(f"graphc profile: --dim takes NAME=SIZE with SIZE a positive int, "
                             f"got {item!r}")
        dims[name] = int(value)
    return dims


def generated_inputs(fn, dims, note=print):
    """Arguments for `fn` from its input types: dims by name from `dims`, else DEFAULT_DIM."""
    rng = np.random.RandomState(0)
    defaulted, args = set(), []
    for v in fn.inputs:
        shape = []
        for d in v.type.shape:
            if isinstance(d, int):
                shape.append(d)
                continue
            name = getattr(d, "name", None)
            if name in dims:
                shape.append(dims[name])
            else:
                defaulted.add(str(name or "?"))
                shape.append(DEFAULT_DIM)
        dtype = np.dtype(v.dtype)
        if dtype.kind == "f":
            args.append(rng.standard_normal(shape).astype(dtype))
        else:
            args.append(np.zeros(shape, dtype))
    if defaulted:
        note(f"{fn.name}: dims {', '.join(sorted(defaulted))} = {DEFAULT_DIM} "
             "(set them with --dim NAME=SIZE)")
    return tuple(args)


def _entries(built, target):
    if isinstance(built, (Function, tuple)):
        built = {getattr(built if isinstance(built, Function) else built[0], "name", "f"): built}
    if not isinstance(built, dict) or not built:
        raise SystemExit(f"graphc profile: {target}() returned {type(built).__name__}; it should "
                         "return a compiled function, (function, args), or a dict of them by name")
    out = []
    for name, value in built.items():
        fn, args = (value, None) if isinstance(value, Function) else \
            (value if isinstance(value, tuple) and len(value) == 2 else (None, None))
        if not isinstance(fn, Function):
            raise SystemExit(f"graphc profile: {target}()[{name!r}] is {type(value).__name__}; "
                             "expected a compiled function or (function, args)")
        out.append((name, fn, args))
    return out


def run(args, builder):
    dims = parse_dims(args.dim)
    if args.remeasure_peak:
        machine_peak(remeasure=True)
    reports = []
    for name, fn, fn_args in _entries(builder(), args.target):
        if fn_args is None:
            fn_args = generated_inputs(fn, dims, note=lambda m: print(m, file=sys.stderr))
        report = profile(fn, *fn_args, repeat=args.repeat)
        print(report.table(top=args.top))
        print()
        reports.append((name, report))
    if args.json:
        import json
        with open(args.json, "w") as fh:
            json.dump({name: r.to_dict() for name, r in reports}, fh, indent=1)
    if args.trace:
        base, dot, ext = args.trace.rpartition(".")
        for name, r in reports:
            path = args.trace if len(reports) == 1 else \
                (f"{base}.{name}.{ext}" if dot else f"{args.trace}.{name}")
            r.to_chrome_trace(path)
            print(f"trace of {name}: {path} (open in chrome://tracing or ui.perfetto.dev)")
    return 0
