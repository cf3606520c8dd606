"""Function: a compiled graph called with numpy arrays, Theano semantics. It runs an executable
a target made (graphc/compiler.py compiles; graphc/targets/ make executables).

What is thread-safe: any number of threads may call compiled functions at once. Calls of one
function run one at a time (its program's lock), and so do calls of functions that touch a
common shared variable (read or update it): each call holds the lock of every shared variable it
touches, taken in one fixed order (no deadlock), and get_value()/set_value() take the same lock.
Functions with no shared variable in common run in parallel.

Interrupts (Ctrl-C): a compiled call is not cut short; updates are all-or-nothing. On the fast
path the program and every update run in C, where no Python signal handler can run; on the
checked path a SIGINT that arrives while the program runs or its updates land is held back and
raised (KeyboardInterrupt) once the call has committed. A long call is therefore interrupted
when it returns, never half-way: its in-place updates cannot be taken back.
"""
import signal
import threading
import weakref
from operator import attrgetter

from ..errors import GraphcTypeError, InputError
from ..ir.fgraph import graph_from_state, graph_state


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
        # The locks of the shared variables a call touches, in their fixed order (module doc).
        self._shared_lock = _lock_of(sorted(self._shareds, key=lambda sv: sv._lock_order))
        fast = program.fast_path(checker, fgraph, single_output)
        if fast is not None:
            # (the shared variables' locks serialize calls of this function too)
            self._lock = self._shared_lock if self._shared_lock is not None else fast.lock
            # (several locks go as their tuple: the native path takes each one itself)
            self._fast = self._call = fast.bind(self._shareds, getattr(self._lock, "locks", self._lock),
                                                program.raise_error, weakref.WeakMethod(self._call))

    @property
    def pass_log(self):
        if callable(self._pass_log):
            self._pass_log = list(self._pass_log())
        return self._pass_log

    # f(...) calls self._call: the target's native call path (it takes the lock, raises a failed
    # run's error, and hands anything it does not accept to the checked path), or the checked path
    # itself. A property over attrgetter reaches it without a Python frame: with one (a def
    # __call__ that forwards), a small call took 1.6x the instructions.
    __call__ = property(attrgetter("_call"))

    def _call(self, *args, **kwargs):
        return self._call_checked(args, kwargs)

    def _call_checked(self, args, kwargs):
        """The Python path: precise error messages, kwargs, python lists and scalars."""
        if kwargs:
            args = self._merge_kwargs(args, kwargs)
        run_shared = getattr(self.program, "run_shared", None)
        if run_shared is not None:  # a device target: it keeps shared values on the device
            with self._shared_lock or _NO_LOCK, _DeferredInterrupt():
                results = run_shared(self.checker, args, self._shareds, self._targets, self._n_out)
            return results[0] if self.single_output else results
        arrays, dims = self.checker.check(args)
        n = self._n_out
        with self._shared_lock or _NO_LOCK, _DeferredInterrupt():
            results = self.program.run(arrays, [s._value for s in self._shareds], dims)
            # Updates land only after the whole program succeeded (every update read the old
            # values), and together: an interrupt waits (module doc).
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

    # --- pickling: the graph as the user built it, compiled again on load (from the cache) ---

    def remember_source(self, fgraph, backend, opt_level, compile_fn):
        """What pickling needs: the user's graph and how it was compiled (graphc/compiler.py)."""
        self._source = (fgraph, backend, opt_level, compile_fn)
        return self

    def __reduce__(self):
        source = getattr(self, "_source", None)
        if source is None:
            raise GraphcTypeError(f"{self.name}: this function cannot be pickled (it was not "
                                  "made by graphc.function); pickle the graph and compile it again")
        fgraph, backend, opt_level, compile_fn = source
        state = graph_state(fgraph.inputs, fgraph.outputs, fgraph.update_targets)
        return (_unpickle_function, (state, self.name, backend, opt_level, self.single_output,
                                     compile_fn, self.checker.allow_downcast))


_MISSING = object()


def _unpickle_function(state, name, backend, opt_level, single_output, compile_fn,
                       allow_input_downcast=None):
    """A pickled Function: its graph rebuilt, then compiled (a warm compile when the build cache
    has it). Shared variables pickled together stay one object, as pickle keeps identity.
    allow_input_downcast is the call-time rule it was compiled with (absent in older pickles)."""
    inputs, outputs, targets = graph_from_state(state)
    n_user = len(outputs) - len(targets)
    user = outputs[0] if single_output else outputs[:n_user]
    return compile_fn(inputs, user, updates=list(zip(targets, outputs[n_user:])), name=name,
                      backend=backend, opt_level=opt_level,
                      allow_input_downcast=allow_input_downcast)


class CompiledGraph:
    """What a Function needs of its graph when it came from the artifact cache (no nodes)."""

    def __init__(self, inputs, shareds, update_targets, n_user_outputs):
        self.inputs, self.shareds, self.update_targets = inputs, shareds, update_targets
        self.n_user_outputs = n_user_outputs


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_LOCK = _NoLock()


class _Locks:
    """Several locks taken in the order given, released in reverse."""
    __slots__ = ("locks",)

    def __init__(self, locks):
        self.locks = tuple(locks)

    def __enter__(self):
        taken = 0
        try:
            for lock in self.locks:
                lock.acquire()
                taken += 1
        except BaseException:  # (an interrupt while waiting: give back what was taken)
            for lock in self.locks[:taken]:
                lock.release()
            raise

    def __exit__(self, *exc):
        for lock in reversed(self.locks):
            lock.release()
        return False


def _lock_of(shareds):
    """One lock object for a call touching `shareds`: None, a variable's lock, or a _Locks."""
    if not shareds:
        return None
    if len(shareds) == 1:
        return shareds[0]._lock
    return _Locks(sv._lock for sv in shareds)


class _DeferredInterrupt:
    """Holds back SIGINT for the block (main thread, Python-level handler only: the only place
    KeyboardInterrupt is raised) and delivers it to the handler after the block."""
    __slots__ = ("handler", "pending")

    def __enter__(self):
        self.handler = self.pending = None
        if threading.current_thread() is not threading.main_thread():
            return self
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            self.handler = handler
            signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame):
        self.pending = (signum, frame)

    def __exit__(self, *exc):
        if self.handler is not None:
            signal.signal(signal.SIGINT, self.handler)
            if self.pending is not None:
                self.handler(*self.pending)
        return False
