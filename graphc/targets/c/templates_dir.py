"""Where the jinja2 templates are: templates/ beside the graphc package that is imported (a
source checkout), else the installed package's graphc/templates."""
import os
from functools import lru_cache

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@lru_cache(maxsize=None)
def templates_root():
    # The checkout's own templates first: an editable install of another checkout maps
    # `graphc.templates` to *its* templates/, which would pair this code with other templates.
    checkout = os.path.join(os.path.dirname(_PACKAGE_DIR), "templates")
    if os.path.isdir(os.path.join(checkout, "c")) and \
            os.path.isfile(os.path.join(os.path.dirname(_PACKAGE_DIR), "setup.py")):
        return checkout
    try:
        from importlib.resources import files
        root = str(files("graphc.templates"))
        if os.path.isdir(os.path.join(root, "c")):
            return root
    except (ModuleNotFoundError, TypeError):
        pass
    return checkout
