"""The target registry: a name given as `backend=` (or GRAPHC_BACKEND) -> a Target.

Built-in targets are imported when first asked for, by module name: `import graphc` does not
pay for a target's toolchain modules (cffi, jinja2) until a function is compiled for it.
"""
import importlib

from ..errors import GraphcTypeError

# name -> (module, class) of the built-in targets
_BUILTIN = {"py": ("graphc.targets.py", "PyTarget"), "c": ("graphc.targets.c.target", "CTarget"),
            "cuda": ("graphc.targets.cuda.target", "CudaTarget")}
# Other names of a target: target="cpu" is the C target (the spelling of the switch).
_ALIASES = {"cpu": "c"}
_registered = {}  # name -> Target instance (built-in ones once asked for, and user ones)


def register(target):
    """Make `target` (a graphc.targets.base.Target) available under target.name."""
    _registered[target.name] = target
    return target


def unregister(name):
    _registered.pop(name, None)


def registered_names():
    return sorted(set(_BUILTIN) | set(_registered))


def get_target(name):
    name = _ALIASES.get(name, name)
    target = _registered.get(name)
    if target is not None:
        return target
    if name not in _BUILTIN:
        raise GraphcTypeError(f"function: unknown backend {name!r}; the registered targets are "
                              f"{', '.join(map(repr, registered_names()))}")
    module, cls = _BUILTIN[name]
    return register(getattr(importlib.import_module(module), cls)())


def available_targets():
    """Names of the targets this machine can run (what the tests parametrize over)."""
    return [n for n in registered_names() if get_target(n).available()]
