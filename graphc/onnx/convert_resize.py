"""ONNX Resize (what PyTorch's Upsample / interpolate export): nearest, linear and cubic modes,
one axis at a time. Every resized axis has a static size and static scales or sizes, so the
source position of each output element is computed at load time (in float64, as onnx's
reference does): nearest is a gather of precomputed indices; linear and cubic (antialiased too)
a weighted sum of a few gathers with precomputed weights (neighbours past the edges repeat the
edge element, ONNX's edge padding). Bilinear is linear on each of the two axes in turn.
tf_crop_and_resize reads the roi and fills positions outside it with extrapolation_value.
"""
import numpy as np

from ..ir.constructors import constant
from ..ir.ops import elemwise as E
from ..ir.ops.indexing import take
from ..ir.ops.shape import reshape
from ..ir.types import dims_equal
from .convert_tensor import dims_of
from .registry import Unsupported, converter

MODES = ("nearest", "linear", "cubic")
TRANSFORMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
              "asymmetric", "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_positions(n_in, n_out, scale, transform, roi=(0.0, 1.0)):
    """Each output index's position in the input (ONNX's get_original_coordinate), float64."""
    x = np.arange(n_out, dtype="float64")
    width = scale * n_in   # ONNX's output_width: the real-valued size
    if transform == "tf_crop_and_resize":
        lo, hi = roi
        pos = np.full(n_out, (hi - lo) * (n_in - 1) / 2) if width == 1 else \
            x * (hi - lo) * (n_in - 1) / (width - 1)
        return pos + lo * (n_in - 1)
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


def _linear(ratio, scale, a):
    return np.array([1 - ratio, ratio])


def _cubic(ratio, scale, a):
    r, q = ratio, 1 - ratio
    return np.array([((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                     ((a + 2) * r - (a + 3)) * r * r + 1,
                     ((a + 2) * q - (a + 3)) * q * q + 1,
                     ((a * (q + 1) - 5 * a) * (q + 1) + 8 * a) * (q + 1) - 4 * a])


def _linear_antialias(ratio, scale, a):
    scale = min(scale, 1.0)
    start = int(np.floor(-1 / scale) + 1)
    c = np.clip(1 - np.abs((np.arange(start, 2 - start) - ratio) * scale), 0, 1)
    return c / c.sum()


def _cubic_antialias(ratio, scale, a):
    scale = min(scale, 1.0)
    start = int(np.floor(-2 / scale) + 1)
    x = np.abs(scale * (np.arange(start, 2 - start) - ratio))
    c = np.where(x <= 1, (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1,
                 np.where(x < 2, a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a, 0.0))
    return c / c.sum()


COEFFS = {("linear", False): _linear, ("cubic", False): _cubic,
          ("linear", True): _linear_antialias, ("cubic", True): _cubic_antialias}


def _nearest_n(x, n):
    """The n integers nearest to x, ties to the smaller, in increasing order."""
    base = int(np.floor(x))
    cands = sorted(range(base - n, base + n + 2), key=lambda i: (abs(x - i), i))[:n]
    return np.array(sorted(cands))


def interpolation_taps(pos, n_in, scale, coeffs, a, exclude_outside):
    """(indices, weights), each [n_out, taps]: output j = sum_k x[indices[j, k]] * weights[j, k]
    (onnx's reference: neighbours past the edges repeat the edge element; exclude_outside drops
    them and renormalizes)."""
    idx, wts = [], []
    for x in pos:
        ratio = 1.0 if float(x).is_integer() else x - np.floor(x)
        c = np.asarray(coeffs(ratio, scale, a), dtype="float64")
        near = _nearest_n(x, len(c))
        if exclude_outside:
            c = np.where((near < 0) | (near >= n_in), 0.0, c)
            c = c / c.sum()
        idx.append(np.clip(near, 0, n_in - 1))
        wts.append(c)
    return np.array(idx, dtype="int64"), np.array(wts)


def _along(w, axis, ndim, dtype):
    shape = [1] * ndim
    shape[axis] = w.shape[0]
    return constant(w.astype(dtype).reshape(shape))


def _text(node, name, default, allowed):
    v = node.attr(name, default)
    if v not in allowed:
        raise Unsupported(f"{name}={v!r}: graphc imports {', '.join(allowed)}")
    return v


def _targets(node, x, keep=()):
    """{axis: (output size, scale)} for the axes that change, or are in `keep`."""
    shape = x.type.shape
    axes = node.attr("axes")
    axes = [a % x.ndim for a in axes] if axes is not None else list(range(x.ndim))
    scales = node.static(2, "scales") if node.has_input(2) else None
    sizes = dims_of(node.static(3, "sizes")) if node.has_input(3) else None
    if sizes is not None and len(sizes) == 0:
        sizes = None
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
            if scale == 1.0 and a not in keep:
                continue
            if not isinstance(n_in, int):
                raise Unsupported(f"axis {a} has the symbolic size {n_in}; graphc resizes axes "
                                  "of static size")
            n_out = int(scale * n_in)
        else:
            if not isinstance(n_in, int) or not isinstance(g, int):
                # (PyTorch's exports of interpolate(size=...) keep the batch and channel axes
                # by sizes read from Shape: symbolic, and equal to the input's)
                if dims_equal(g, n_in) and a not in keep:
                    continue
                raise Unsupported(f"axis {a} of size {n_in} resized to {g}: graphc resizes "
                                  "axes of static size to static sizes")
            n_out = int(g)
            if n_out == n_in and a not in keep:
                continue
            scale = n_out / n_in
        if n_out < 1 or n_in < 1:
            raise Unsupported(f"axis {a}: resizing {n_in} to {n_out} elements")
        out[a] = (n_out, scale)
    return out


def _keep_aspect(shape, axes, sizes, policy):
    """One scale for all `axes` (the smallest or largest of sizes/shape), sizes rounded half up."""
    if not all(isinstance(shape[a], int) for a in axes) or \
            not all(isinstance(n, int) for n in sizes):
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


def _rois(node, x):
    """{axis: (start, end)} of tf_crop_and_resize's roi, for the axes it does not leave whole."""
    roi = node.static(1, "roi") if node.has_input(1) else None
    if roi is None or roi.size == 0:
        raise Unsupported("tf_crop_and_resize needs the roi input")
    axes = node.attr("axes")
    axes = [a % x.ndim for a in axes] if axes is not None else list(range(x.ndim))
    roi = [float(v) for v in roi.reshape(-1)]
    if len(roi) != 2 * len(axes):
        raise Unsupported(f"roi has {len(roi)} entries for {len(axes)} axes (starts, then ends)")
    return {a: (lo, hi) for a, lo, hi in zip(axes, roi[:len(axes)], roi[len(axes):])
            if (lo, hi) != (0.0, 1.0)}


@converter("Resize", attrs=("mode", "coordinate_transformation_mode", "nearest_mode",
                            "cubic_coeff_a", "exclude_outside", "extrapolation_value",
                            "antialias", "axes", "keep_aspect_ratio_policy"))
def resize(node):
    x = node.input(0)
    mode = _text(node, "mode", "nearest", MODES)
    transform = _text(node, "coordinate_transformation_mode", "half_pixel", TRANSFORMS)
    nearest_mode = _text(node, "nearest_mode", "round_prefer_floor", NEAREST_MODES)
    antialias = bool(node.attr("antialias", 0)) and mode != "nearest"
    if mode != "nearest" and x.dtype not in ("float32", "float64"):
        raise Unsupported(f"{mode} mode on {x.dtype} (graphc blends floats)")
    rois = _rois(node, x) if transform == "tf_crop_and_resize" else {}
    y = x
    # the last axis first, as onnx's reference nests them (it matters where values extrapolate)
    for axis, (n_out, scale) in sorted(_targets(node, x, keep=rois).items(), reverse=True):
        n_in = x.type.shape[axis]
        pos = source_positions(n_in, n_out, scale, transform, rois.get(axis, (0.0, 1.0)))
        if mode == "nearest":
            y = take(y, constant(nearest_indices(pos, n_in, nearest_mode)), axis)
        else:
            idx, w = interpolation_taps(pos, n_in, scale, COEFFS[mode, antialias],
                                        node.attr("cubic_coeff_a", -0.75),
                                        bool(node.attr("exclude_outside", 0)))
            terms = [take(y, constant(idx[:, k]), axis) * _along(w[:, k], axis, x.ndim, x.dtype)
                     for k in range(idx.shape[1]) if np.any(w[:, k] != 0)]
            y = terms[0]
            for t in terms[1:]:
                y = y + t
        outside = (pos < 0) | (pos > n_in - 1)
        if transform == "tf_crop_and_resize" and outside.any():
            shape = [1] * x.ndim
            shape[axis] = n_out
            y = E.where_op(constant(outside.reshape(shape)),
                           np.asarray(node.attr("extrapolation_value", 0.0), x.dtype), y)
    if y is x:
        y = reshape(x, x.type.shape)   # a new variable for the node's output name
    return y
