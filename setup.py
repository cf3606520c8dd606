"""Build what graphc prepares at install, so that no compile ever pays for it:

- the call path, a C extension (templates/python/gc_dispatch.c);
- the C templates compiled to jinja bytecode (graphc/_compiled_templates/);
- the cffi module for the entry points of compiled programs (graphc/_gc_ffi_*.py);
- the runtime library (the parallel gemm), compiled for this machine (graphc/_runtime/).

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
        jinja_env = _load("graphc/targets/c/jinja_env.py")
        jinja_env.precompile_templates(os.path.join(ROOT, "templates"),
                                       os.path.join(package_dir, jinja_env.SHIPPED_DIR_NAME))
        _load("graphc/targets/c/ffi_module.py").emit(package_dir)
        self._build_runtime_library(package_dir)

    def _build_runtime_library(self, package_dir):
        """graphc's runtime library (the parallel gemm), which a first compile would otherwise
        build. Optional: on failure graphc builds it into its cache when first needed."""
        build = _load("graphc/targets/c/runtime_build.py")
        try:
            import scipy_openblas32  # a build requirement: its headers
            source = build.render_source(os.path.join(ROOT, "templates"))
            cc = os.environ.get("CC", "gcc")
            out_dir = os.path.join(package_dir, build.SHIPPED_DIR_NAME)
            if os.path.isdir(out_dir):  # copies for older templates or flags
                for old in os.listdir(out_dir):
                    os.unlink(os.path.join(out_dir, old))
            build.build(source, os.path.join(out_dir, build.library_name(source, cc)), cc,
                        scipy_openblas32.get_include_dir())
        except Exception as e:  # noqa: BLE001 - never fail the install for an optional artifact
            print(f"graphc: runtime library not built at install ({e}); built on first use")


setup(ext_modules=[Extension("graphc.gc_dispatch", ["templates/python/gc_dispatch.c"],
                             include_dirs=[numpy.get_include()], extra_compile_args=["-O2"])],
      cmdclass={"build_ext": BuildWithPrepared})
