"""theano.printing: pprint (an expression as text) and debugprint (graphc's graph listing)."""
from ..ir.printing import debugprint, expression_text


def pprint(var):
    """The expression of `var` as one line of text, e.g. `((x * 2.0) + b)`."""
    return expression_text(var)


__all__ = ["pprint", "debugprint"]
