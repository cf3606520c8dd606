"""Where the jinja2 templates are: templates/ in a checkout, or inside the installed package."""
import os
from functools import lru_cache


@lru_cache(maxsize=None)
def templates_root():
    # The checkout's own templates first: with an editable install of another checkout (a git
    # worktree), "graphc.templates" resolves to that other checkout's templates.
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "templates"))
    if os.path.isdir(os.path.join(root, "c")):
        return root
    from importlib.resources import files
    return str(files("graphc.templates"))
