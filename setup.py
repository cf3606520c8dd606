"""Build what graphc prepares at install, so that no compile ever pays for it:

- the call path, a C extension (templates/python/gc_dispatch.c);
- the C templates compiled to jinja bytecode (graphc/_compiled_templates/);
- the cffi module for the entry points of compiled programs (graphc/_gc_ffi_*.py).

Everything else is in pyproject.toml. Each is optional at run time: a source checkout without a
build makes them in its cache on first use.
"""
import importlib.util
import os

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


def _load(relpath):
    """A standalone module of graphc, loaded by path (importing graphc needs its dependencies)."""
    spec = importlib.util.spec_from_file_location(os.path.basename(relpath)[:-3],
                                                  os.path.join(ROOT, relpath))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithPrepared(build_ext):
    def run(self):
        super().run()
        # The package directory the extension went to: graphc/ in place (editable installs) or
        # build/lib*/graphc/ (wheels).
        package_dir = os.path.dirname(self.get_ext_fullpath("graphc.gc_dispatch"))
        jinja_env = _load("graphc/codegen/jinja_env.py")
        jinja_env.precompile_templates(os.path.join(ROOT, "templates"),
                                       os.path.join(package_dir, jinja_env.SHIPPED_DIR_NAME))
        _load("graphc/runtime/ffi_module.py").emit(package_dir)


setup(ext_modules=[Extension("graphc.gc_dispatch", ["templates/python/gc_dispatch.c"],
                             include_dirs=[numpy.get_include()], extra_compile_args=["-O2"])],
      cmdclass={"build_ext": BuildWithPrepared})
