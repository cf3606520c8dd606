"""graphc.aot: ship compiled functions as a standalone C library (the C target's exporter,
graphc/targets/c/aot.py, under its public name)."""
from .targets.c.aot import (DTYPE_CODES, PARAMS_MAGIC, Export, ParamsFileError,  # noqa: F401
                            export, load_params, save_params)

__all__ = ["export", "save_params", "load_params", "Export", "PARAMS_MAGIC", "DTYPE_CODES",
           "ParamsFileError"]
