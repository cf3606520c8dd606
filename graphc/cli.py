"""The graphc command line.

    graphc aot examples/aot_mlp.py:build --out dist/mlp [--name mlp] [--march x86-64-v3]
    graphc profile examples/profile_steps.py:build [--repeat 20] [--dim batch=64] [--trace t.json]

`aot` imports the script (or module), calls the function named after the colon (default
`build`), which returns {c_name: graphc.function(...)}, and exports those functions as a
standalone C library with graphc.aot.export.
"""
import argparse
import importlib
import os
import runpy
import sys

from .errors import GraphcError


def _load_builder(target, command="aot",
                  returns="a dict {name: graphc.function(...)}"):
    path, _, fn_name = target.rpartition(":") if ":" in target else (target, "", "build")
    fn_name = fn_name or "build"
    if path.endswith(".py") or os.path.sep in path or os.path.isfile(path):
        if not os.path.isfile(path):
            raise SystemExit(f"graphc {command}: no such script: {path}")
        script_dir = os.path.dirname(os.path.abspath(path))
        sys.path.insert(0, script_dir)  # the script's own imports of its neighbours
        try:
            namespace = runpy.run_path(path, run_name="__graphc_aot__")
        finally:
            if sys.path and sys.path[0] == script_dir:
                sys.path.pop(0)
    else:
        namespace = vars(importlib.import_module(path))
    builder = namespace.get(fn_name)
    if not callable(builder):
        raise SystemExit(f"graphc {command}: {path} has no function {fn_name}() "
                         f"(it should return {returns})")
    return builder


def _aot(args):
    from .aot import export  # (deferred: the C toolchain modules, only for this command)
    builder = _load_builder(args.target)
    functions = builder()
    if not isinstance(functions, dict) or not functions:
        raise SystemExit(f"graphc aot: {args.target}() returned {type(functions).__name__}; it "
                         "should return a dict {name: graphc.function(...)}")
    out = export(functions, args.out, name=args.name, march=args.march,
                 embed_params=not args.no_embed_params, profile=args.profile)
    print(f"exported {', '.join(out.functions)} to {out.directory}:")
    for label, path in (("library", out.library), ("header", out.header),
                        ("parameters", out.params), ("example", out.example)):
        print(f"  {label:<11}{os.path.relpath(path)}")
    print(f"build the example: make -C {os.path.relpath(out.directory)}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="graphc", description="graphc: a symbolic graph "
                                     "compiler for deep learning")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    aot = sub.add_parser("aot", help="export compiled functions as a standalone C library",
                         description="Export the functions that SCRIPT.py:FUNCTION() returns "
                         "({name: graphc.function(...)}) as a shared library with a C header, "
                         "the parameter values, an example main.c and a Makefile.")
    aot.add_argument("target", help="SCRIPT.py:FUNCTION or package.module:FUNCTION "
                     "(FUNCTION defaults to build)")
    aot.add_argument("--out", required=True, help="the folder to write (created if needed)")
    aot.add_argument("--name", help="library name and C prefix (default: the --out folder's name)")
    aot.add_argument("--march", help="CPU to build for (default: native, as graphc.function); "
                     "e.g. x86-64-v3 to run on other machines")
    aot.add_argument("--profile", action="store_true",
                     help="a profiling build: timers around each kernel, read with "
                     "<name>_profile() (main.c: -t)")
    aot.add_argument("--no-embed-params", action="store_true",
                     help="do not build the parameter values into the library "
                     "(<name>_create then needs the .params file)")
    prof = sub.add_parser("profile", help="time each kernel of compiled functions (a table)",
                          description="Profile the functions that SCRIPT.py:FUNCTION() returns "
                          "(a compiled function, (function, args), or a dict of them by name): "
                          "per kernel time, FLOPs, bytes and fraction of the machine's peak.")
    prof.add_argument("target", help="SCRIPT.py:FUNCTION or package.module:FUNCTION "
                      "(FUNCTION defaults to build)")
    prof.add_argument("--repeat", type=int, default=20, help="timed calls (default 20)")
    prof.add_argument("--dim", action="append", metavar="NAME=SIZE",
                      help="a symbolic dim's size for generated inputs (default 32)")
    prof.add_argument("--top", type=int, metavar="N",
                      help="show only the N kernels that took the most time (the rest summed)")
    prof.add_argument("--json", help="also write the reports as JSON to this file")
    prof.add_argument("--trace", help="also write a Chrome trace (chrome://tracing, Perfetto)")
    prof.add_argument("--remeasure-peak", action="store_true",
                      help="measure the machine's peak again (cached; measure on a quiet machine)")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "profile":
        from .profiler.command import run  # (deferred: the profiler, only for this command)
        try:
            return run(args, _load_builder(args.target, "profile", "a compiled function, "
                                           "(function, args), or a dict of them by name"))
        except GraphcError as e:
            print(f"graphc profile: {e}", file=sys.stderr)
            return 1
    try:
        return _aot(args)
    except GraphcError as e:
        print(f"graphc aot: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
