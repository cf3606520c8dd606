"""theano.config over graphc.config: floatX and the settings graphc has are graphc's own (setting
theano.config.floatX sets graphc's); Theano's other common settings read as Theano's defaults
on a CPU, and may be set (they change nothing in graphc)."""

_THEANO_DEFAULTS = {
    "device": "cpu", "mode": "FAST_RUN", "on_unused_input": "raise", "optimizer": "fast_run",
    "exception_verbosity": "low", "compute_test_value": "off", "cast_policy": "custom",
    "warn_float64": "ignore", "allow_gc": True, "openmp": True, "profile": False,
    "deterministic": "default", "compiledir": "",
}


class TheanoConfig:
    def __init__(self, graphc_config):
        object.__setattr__(self, "_graphc", graphc_config)
        object.__setattr__(self, "_theano", dict(_THEANO_DEFAULTS))

    def __getattr__(self, name):
        if hasattr(self._graphc, name):
            return getattr(self._graphc, name)
        if name in self._theano:
            return self._theano[name]
        raise AttributeError(f"theano.config (graphc) has no setting {name!r}")

    def __setattr__(self, name, value):
        if hasattr(self._graphc, name):
            setattr(self._graphc, name, value)
        else:
            self._theano[name] = value
