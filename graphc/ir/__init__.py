"""The graph IR: types, variables and nodes, ops by family, printers.

The core (types, graph, shapes) imports nothing above it; the tensor API completes it when the
package loads: Variable's operators and methods (methods.py) and how an op converts Python
values to variables (constructors.py)."""
from . import constructors, methods  # noqa: F401
