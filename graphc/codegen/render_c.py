"""Render a Program as one C source file from templates/c/ (jinja2)."""
import os
from functools import lru_cache

import jinja2

from ..config import config

from .cprinter import C_TYPES, int_to_c
from .templates_dir import templates_root


@lru_cache(maxsize=None)
def environment():
    # Compiled templates are cached on disk too: a new process skips jinja's parse (~0.1 s).
    bytecode_dir = os.path.join(config.cache_dir, "jinja")
    os.makedirs(bytecode_dir, exist_ok=True)
    return jinja2.Environment(loader=jinja2.FileSystemLoader(templates_root()),
                              bytecode_cache=jinja2.FileSystemBytecodeCache(bytecode_dir),
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined)


class _BufView:
    """What a template sees of a buffer: its id, C type, role, slot and offset as C text."""

    def __init__(self, b):
        self.id, self.role, self.slot, self.name = b.id, b.role, b.slot, b.name
        self.ctype = C_TYPES[b.dtype]
        self.offset = int_to_c(b.offset) if b.offset is not None else "0"


def render_program(program, name, blas_prefix, wrapper="jit_wrapper", entry_prefix="gc_entry_",
                   extra=None):
    used = {b.id for k in program.kernels for b in k.inputs + k.outputs}
    externals = [_BufView(b) for b in program.externals]
    temps = [_BufView(b) for b in program.buffers if b.role == "temp" and b.id in used]
    template = environment().get_template("c/program.c.j2")
    return template.render(
        name=name, prefix=entry_prefix, wrapper=wrapper,
        dim_names=[s.name for s in program.dim_symbols],
        workspace_bytes=int_to_c(program.workspace_bytes),
        externals=externals, temps=temps, kernels=program.kernels,
        uses_blas=any(k.kind == "gemm" for k in program.kernels),
        blas_prefix=blas_prefix, **(extra or {}))
