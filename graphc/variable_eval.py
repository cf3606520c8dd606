"""Variable.eval(): Theano's way to compute a variable once, for debugging and notebooks.

    x = G.vector("x"); (x * 2).eval({x: [1, 2]})   # -> array([2., 4.])

Installed on Variable by the public API (the graph core does not compile). The compiled
function is kept on the variable per set of inputs, so a second eval costs one call."""
from .compiler import function
from .errors import GraphcTypeError
from .ir.graph import Variable


def eval_variable(self, inputs_to_values=None):
    """The value of this variable, given values for the inputs it depends on (a dict)."""
    values = inputs_to_values or {}
    if not isinstance(values, dict):
        raise GraphcTypeError(f"{self.label()}.eval: give the inputs as a dict {{variable: value}}, "
                              f"got {type(values).__name__}")
    inputs = list(values)
    cache = self.__dict__.setdefault("_eval_functions", {})  # freed with the variable
    key = tuple(v.id for v in inputs)
    fn = cache.get(key)
    if fn is None:
        fn = cache[key] = function(inputs, self, name="eval")  # default updates apply, as in Theano
    return fn(*[values[v] for v in inputs])


Variable.eval = eval_variable
