"""ONNX Resize (what PyTorch's Upsample / interpolate export): nearest and linear modes, one axis
at a time. Every resized axis has a static size and static scales or sizes, so the source
position of each output element is computed at load time (in float64, as onnx's reference does):
nearest is a gather of precomputed indices, linear a blend of two gathers with precomputed
weights (the neighbours clamped to the edge, ONNX's edge padding). Bilinear is linear on each of
the two axes in turn. Cubic mode, antialiasing and tf_crop_and_resize are refused.
"""
import numpy as np

from ..ir.constructors import constant
from ..ir.ops.indexing import take
from ..ir.ops.shape import reshape
from .registry import Unsupported, converter

MODES = ("nearest", "linear")
TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
              "asymmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_positions(n_in, n_out, scale, transform):
    """Each output index's position in the input (ONNX's get_original_coordinate), float64."""
    x = np.arange(n_out, dtype="float64")
    width = scale * n_in   # ONNX's output_width: the real-valued size
    if transform == "align_corners":
        return np.zeros(n_out) if width == 1 else x * (n_in - 1) / (width - 1)
    if transform == "asymmetric":
        return x / scale
    if transform == "pytorch_half_pixel":
        return np.full(n_out, -0.5) if width == 1 else (x + 0.5) / scale - 0.5
    if transform == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / width)
        return offset + (x + 0.5) / scale - 0.5
    return (x + 0.5) / scale - 0.5   # half_pixel


def nearest_indices(pos, n_in, nearest_mode):
    low = np.floor(pos)
    frac = pos - low
    up = {"round_prefer_floor": frac > 0.5, "round_prefer_ceil": frac >= 0.5,
          "floor": np.zeros_like(frac, bool), "ceil": frac > 0}[nearest_mode]
    return np.clip(low + up, 0, n_in - 1).astype("int64")


def linear_taps(pos, n_in):
    """(left indices, right indices, weight of the right one), clamped at the edges."""
    low = np.floor(pos)
    w = pos - low
    i0 = np.clip(low, 0, n_in - 1).astype("int64")
    i1 = np.clip(low + 1, 0, n_in - 1).astype("int64")
    return i0, i1, w


def _along(w, axis, ndim, dtype):
    shape = [1] * ndim
    shape[axis] = w.shape[0]
    return constant(w.astype(dtype).reshape(shape))


def _text(node, name, default, allowed):
    v = node.attr(name, default)
    if v not in allowed:
        raise Unsupported(f"{name}={v!r}: graphc imports {', '.join(allowed)}")
    return v


def _targets(node, x):
    """{axis: (output size, scale)} for the axes that change or are named."""
    shape = x.type.shape
    axes = node.attr("axes")
    axes = [a % x.ndim for a in axes] if axes is not None else list(range(x.ndim))
    scales = node.static(2, "scales") if node.has_input(2) else None
    sizes = node.static_ints(3, "sizes") if node.has_input(3) else None
    if scales is not None and scales.size == 0:
        scales = None
    if (scales is None) == (sizes is None):
        raise Unsupported("exactly one of scales and sizes must be given")
    given = list(scales.reshape(-1)) if scales is not None else sizes
    if len(given) != len(axes):
        raise Unsupported(f"{'scales' if sizes is None else 'sizes'} has {len(given)} entries for "
                          f"{len(axes)} axes")
    policy = _text(node, "keep_aspect_ratio_policy", "stretch",
                   ("stretch", "not_larger", "not_smaller"))
    if sizes is not None and policy != "stretch":
        return _keep_aspect(shape, axes, sizes, policy)
    out = {}
    for a, g in zip(axes, given):
        n_in = shape[a]
        if sizes is None:
            scale = float(np.float32(g))
            if scale <= 0:
                raise Unsupported(f"scale {scale} on axis {a} must be positive")
            if scale == 1.0:
                continue
            if not isinstance(n_in, int):
                raise Unsupported(f"axis {a} has the symbolic size {n_in}; graphc resizes axes "
                                  "of static size")
            n_out = int(scale * n_in)
        else:
            if not isinstance(n_in, int):
                if g == n_in:
                    continue
                raise Unsupported(f"axis {a} has the symbolic size {n_in}; graphc resizes axes "
                                  "of static size")
            n_out = int(g)
            if n_out == n_in:
                continue
            scale = n_out / n_in
        if n_out < 1 or n_in < 1:
            raise Unsupported(f"axis {a}: resizing {n_in} to {n_out} elements")
        out[a] = (n_out, scale)
    return out


def _keep_aspect(shape, axes, sizes, policy):
    """One scale for all `axes` (the smallest or largest of sizes/shape), sizes rounded half up."""
    if not all(isinstance(shape[a], int) for a in axes):
        raise Unsupported(f"keep_aspect_ratio_policy={policy!r} needs static sizes on axes {axes}")
    ratios = [n / shape[a] for a, n in zip(axes, sizes)]
    scale = min(ratios) if policy == "not_larger" else max(ratios)
    out = {}
    for a in axes:
        n_out = int(scale * shape[a] + 0.5)
        if n_out < 1:
            raise Unsupported(f"axis {a}: resizing {shape[a]} to {n_out} elements")
        if scale != 1.0:
            out[a] = (n_out, scale)
    return out


@converter("Resize", attrs=("mode", "coordinate_transformation_mode", "nearest_mode",
                            "cubic_coeff_a", "exclude_outside", "extrapolation_value",
                            "antialias", "axes", "keep_aspect_ratio_policy"))
def resize(node):
    x = node.input(0)
    mode = _text(node, "mode", "nearest", MODES)
    transform = _text(node, "coordinate_transformation_mode", "half_pixel", TRANSFORMS)
    nearest_mode = _text(node, "nearest_mode", "round_prefer_floor", NEAREST_MODES)
    if node.attr("antialias", 0):
        raise Unsupported("antialias=1 (graphc resizes without an antialiasing filter)")
    if mode == "linear" and x.dtype not in ("float32", "float64"):
        raise Unsupported(f"linear mode on {x.dtype} (graphc blends floats)")
    y = x
    for axis, (n_out, scale) in sorted(_targets(node, x).items()):
        n_in = x.type.shape[axis]
        pos = source_positions(n_in, n_out, scale, transform)
        if mode == "nearest":
            y = take(y, constant(nearest_indices(pos, n_in, nearest_mode)), axis)
            continue
        i0, i1, w = linear_taps(pos, n_in)
        left, right = take(y, constant(i0), axis), take(y, constant(i1), axis)
        y = left * _along(1 - w, axis, x.ndim, x.dtype) + right * _along(w, axis, x.ndim, x.dtype)
    if y is x:
        y = reshape(x, x.type.shape)   # a new variable for the node's output name
    return y
