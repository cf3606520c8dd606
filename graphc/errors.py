"""One exception family, so a user can catch every graphc error with `except GraphcError`."""


class GraphcError(Exception):
    """Base of every error graphc raises on purpose."""


class GraphcTypeError(GraphcError, TypeError):
    """A variable or value has the wrong dtype, rank or kind."""


class GraphcShapeError(GraphcError, ValueError):
    """Shapes do not agree (at graph construction or at call time)."""


class InputError(GraphcError, ValueError):
    """An argument passed to a compiled function is not what the function was built for."""


class GradError(GraphcError, ValueError):
    """The gradient asked for cannot be built (non-scalar cost, disconnected input, ...)."""


class CompileError(GraphcError, RuntimeError):
    """The C compiler or loader failed; the message carries the compiler output."""


class RuntimeCheckError(GraphcError, RuntimeError):
    """The compiled program reported an error at run time (bad index, ...)."""


class PipelineError(GraphcError, ValueError):
    """An optimization level or pass name that the pass manager does not know."""


class GraphVerifyError(GraphcError, RuntimeError):
    """A pass left a malformed graph (the verifier, GRAPHC_VERIFY_GRAPHS=1, found it): a bug in
    that pass, named in the message."""


class RaceCheckError(RuntimeCheckError):
    """The CUDA race checker (GRAPHC_CUDA_RACECHECK=1, emulated) found data races or out-of-bounds
    accesses in the kernels of a call: a bug in graphc's CUDA templates, named in the message."""
