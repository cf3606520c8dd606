"""Function: a compiled graph called with numpy arrays, Theano semantics. It runs an executable
a target made (graphc/compiler.py compiles; graphc/targets/ make executables)."""
from ..errors import InputError


class Function:
    """A compiled graph. Call with numpy arrays (positionally or by input name)."""

    def __init__(self, fgraph, program, checker, name, single_output, timings, pass_log=()):
        self.fgraph = fgraph
        self.program = program  # the target's executable
        self.checker = checker
        self.name = name
        self.single_output = single_output
        self.timings = timings  # seconds per compile stage, for users and benchmarks
        # (pass name, seconds, graph text) per pass, for dumps; or a function that makes them
        # (a warm compile rebuilds them from this graph, with its names, when asked)
        self._pass_log = pass_log if callable(pass_log) else list(pass_log)
        self._n_out = fgraph.n_user_outputs
        self._targets = fgraph.update_targets
        self._shareds = fgraph.shareds
        self._input_index = {v.name: k for k, v in enumerate(fgraph.inputs) if v.name}
        # The target's native call path, unpacked into attributes: __call__ is the hot path.
        self._fast = None
        fast = program.fast_path(checker, fgraph, single_output)
        if fast is not None:
            self._fast, self._spec, self._lock = fast.call, fast.spec, fast.lock
            self._fn_addr, self._ctx_addr, self._consts = fast.fn_addr, fast.ctx_addr, fast.consts

    @property
    def pass_log(self):
        if callable(self._pass_log):
            self._pass_log = list(self._pass_log())
        return self._pass_log

    def __call__(self, *args, **kwargs):
        fast = self._fast
        if fast is not None and not kwargs:
            with self._lock:
                result = fast(self._spec, self._fn_addr, self._ctx_addr, args, self._shareds,
                              self._consts, "_value")
            if result is not NotImplemented:
                if type(result) is int:
                    self.program.raise_error()
                return result
        return self._call_checked(args, kwargs)

    def _call_checked(self, args, kwargs):
        """The Python path: precise error messages, kwargs, python lists and scalars."""
        if kwargs:
            args = self._merge_kwargs(args, kwargs)
        arrays, dims = self.checker.check(args)
        results = self.program.run(arrays, [s._value for s in self._shareds], dims)
        # Updates land only after the whole program succeeded (every update read the old values).
        n = self._n_out
        for sv, value in zip(self._targets, results[n:]):
            sv._value = value
        if self.single_output:
            return results[0]
        return results[:n]

    def _merge_kwargs(self, args, kwargs):
        given = len(args)
        args = list(args) + [_MISSING] * (len(self.fgraph.inputs) - len(args))
        for key, value in kwargs.items():
            if key not in self._input_index:
                raise InputError(f"{self.name}: no input named {key!r} "
                                 f"(inputs: {', '.join(self._input_index)})")
            k = self._input_index[key]
            if k < given:
                raise InputError(f"{self.name}: input {key} is given twice (position {k} and "
                                 "by name); pass it once")
            args[k] = value
        missing = [self.fgraph.inputs[k].label() for k, a in enumerate(args) if a is _MISSING]
        if missing:
            raise InputError(f"{self.name}: no value was given for input(s) {', '.join(missing)}")
        return args

    @property
    def inputs(self):
        return self.fgraph.inputs


_MISSING = object()


class CompiledGraph:
    """What a Function needs of its graph when it came from the artifact cache (no nodes)."""

    def __init__(self, inputs, shareds, update_targets, n_user_outputs):
        self.inputs, self.shareds, self.update_targets = inputs, shareds, update_targets
        self.n_user_outputs = n_user_outputs
