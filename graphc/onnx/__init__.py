"""ONNX import and export (needs the optional `onnx` package: pip install 'graphc[onnx]').

    m = graphc.onnx.load("model.onnx")        # or an onnx.ModelProto, or the file's bytes
    m.inputs, m.outputs                       # graphc variables; dim_params become graphc.dim
    m.params                                  # float initializers as shared variables, by name
    f = graphc.function(m.inputs, m.outputs)  # compile as any graph
    graphc.onnx.export(inputs, outputs, "mine.onnx")

graphc.onnx.backend implements ONNX's backend interface; `python -m graphc.onnx.conformance`
runs ONNX's own node tests through it.
"""
from .proto import OnnxError, OnnxUnsupported


def _require_onnx():
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise OnnxError("graphc.onnx needs the onnx package: pip install 'graphc[onnx]'") from None


def load(source, check=True, static_inputs=None, untie=False):
    """Import an ONNX model (ModelProto, path or bytes) as an OnnxModel: inputs, outputs, params.
    Raises OnnxUnsupported listing every operator, opset, attribute or type graphc cannot take,
    and OnnxError for a malformed file. static_inputs ({input name: value}) fixes inputs that
    carry shapes or axes, which graphc needs when it compiles.
    An Identity of a float initializer reads the same parameter (ONNX's meaning: one tensor);
    untie=True makes it a parameter of its own, started from a copy: PyTorch's eval-mode export
    merges parameters that are equal when exported (fresh LayerNorm/BatchNorm weights, zero
    biases, even a running mean with a bias) through such Identity nodes, and fine-tuning the
    original model needs them apart."""
    _require_onnx()
    from .importer import load as _load
    return _load(source, check, static_inputs, untie)


def export(inputs, outputs, path=None, opset=17, output_names=None):
    """Write the graph from `inputs` to `outputs` as an ONNX model (shared variables become
    initializers). Returns the ModelProto; saves it to `path` when given."""
    _require_onnx()
    from .exporter import export as _export
    return _export(inputs, outputs, path, opset, output_names)


def supported_ops():
    """The ONNX operator types graphc imports."""
    from .registry import supported_ops as _ops
    return _ops()


__all__ = ["load", "export", "supported_ops", "OnnxError", "OnnxUnsupported"]
