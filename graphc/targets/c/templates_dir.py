"""Where the jinja2 templates are: inside the installed package, or templates/ in a checkout."""
import os
from functools import lru_cache


@lru_cache(maxsize=None)
def templates_root():
    try:
        from importlib.resources import files
        root = str(files("graphc.templates"))
        if os.path.isdir(os.path.join(root, "c")):
            return root
    except (ModuleNotFoundError, TypeError):
        pass
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "templates")
    return os.path.abspath(root)
