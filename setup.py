"""Build the one C extension graphc ships: the call path (templates/python/gc_dispatch.c).

Everything else is in pyproject.toml. Built at install so no compile ever pays for it; if it is
missing (a source checkout without a build), graphc builds it into its cache on first use.
"""
import numpy
from setuptools import Extension, setup

setup(ext_modules=[Extension("graphc.gc_dispatch", ["templates/python/gc_dispatch.c"],
                             include_dirs=[numpy.get_include()], extra_compile_args=["-O2"])])
