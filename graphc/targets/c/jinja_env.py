"""The jinja2 environment every C source is rendered with, and its compiled-template cache.

Standalone on purpose (imports only jinja2): setup.py loads this file to compile the templates
at install time, so that the first compile in a new process does not parse them (~0.1 s).
"""
import hashlib
import os

import jinja2

# Where setup.py writes the compiled templates, inside the installed package.
SHIPPED_DIR_NAME = "_compiled_templates"
# The filters the C templates use (render_c.C_FILTERS implements them). jinja checks filter names
# when it compiles a template, so compiling at install time needs the names, not the code.
C_FILTER_NAMES = ("c_int", "c_type", "c_float", "c_libm", "c_scalar_code", "may_thread",
                  "blas_precision", "c_comment", "c_string")


class LayeredBytecodeCache(jinja2.FileSystemBytecodeCache):
    """jinja's on-disk bytecode cache, read from the user's cache first and then from the copy
    compiled at install; written only to the user's cache. Each entry carries a checksum of its
    template's source, so an edited template is recompiled, never served stale."""

    def __init__(self, directory, shipped_dir=None, check_file=None):
        super().__init__(directory)
        self.shipped_dir = shipped_dir
        self.check_file = check_file  # vets a user-cache entry before it is unmarshalled

    def get_cache_key(self, name, filename=None):
        # Keyed by the template name only (not its absolute path): the install-time copy is
        # compiled from the source tree but used from site-packages.
        return hashlib.sha1(name.encode("utf-8")).hexdigest()

    def load_bytecode(self, bucket):
        if self.check_file is not None:
            self.check_file(self._get_cache_filename(bucket))
        super().load_bytecode(bucket)
        if bucket.code is None and self.shipped_dir:
            path = os.path.join(self.shipped_dir, self.pattern % bucket.key)
            try:
                with open(path, "rb") as fh:
                    bucket.load_bytecode(fh)
            except OSError:
                pass


def make_environment(templates_root, bytecode_dir, shipped_dir=None, filters=None,
                     check_file=None):
    os.makedirs(bytecode_dir, exist_ok=True)
    cache = LayeredBytecodeCache(bytecode_dir, shipped_dir, check_file)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_root), bytecode_cache=cache,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(filters or {})
    return env


def _compile_only(*args, **kwargs):
    raise RuntimeError("this environment only compiles templates")


def precompile_templates(templates_root, out_dir):
    """Compile every C template into `out_dir` (jinja bytecode). Returns how many."""
    env = make_environment(templates_root, out_dir,
                           filters=dict.fromkeys(C_FILTER_NAMES, _compile_only))
    names = env.list_templates(filter_func=lambda n: n.startswith("c/") and n.endswith((".j2", ".h")))
    for name in names:
        env.get_template(name)
    return len(names)
