"""Loss functions (scalar symbolic expressions), normalized as Caffe's loss layers are.

    softmax_cross_entropy(logits, labels)        mean over the batch of -log softmax(z)[label]
    sigmoid_cross_entropy(logits, targets)       sum of per-element binary CE / batch size
    euclidean(a, b)                              sum((a - b)^2) / (2 * batch size)
    hinge(scores, labels, norm=1)                sum_k max(0, 1 - d_k z_k)^norm / batch size,
                                                 d_k = +1 for the label's class, -1 otherwise
    accuracy(scores, labels, top_k=1)            fraction with the label among the top k scores

``normalization``: "batch_size" (Caffe's BATCH_SIZE: divide by the first dim) or "valid"/"full"
(divide by the element count). The defaults are Caffe's: VALID for softmax (with no ignored
labels, the batch size), BATCH_SIZE for the sigmoid cross-entropy, Euclidean and hinge losses.
"""
import graphc as G

__all__ = ["softmax_cross_entropy", "sigmoid_cross_entropy", "euclidean", "hinge", "accuracy"]


def _check_norm(normalization):
    n = normalization.lower()
    if n not in ("batch_size", "valid", "full"):
        raise ValueError(f"normalization must be 'batch_size', 'valid' or 'full', got {normalization!r}")
    return n


def _batch_normalize(per_element, normalization):
    """Reduce an elementwise loss to a scalar: sum over non-batch axes, mean over the batch
    ("batch_size"), or mean over all elements ("valid"/"full")."""
    if _check_norm(normalization) != "batch_size" or per_element.ndim <= 1:
        return G.mean(per_element)
    return G.mean(G.sum(per_element, axis=tuple(range(1, per_element.ndim))))


def _check_labels(scores, labels, who):
    if labels.dtype not in ("int32", "int64"):
        raise G.GraphcTypeError(f"{who}: labels must be int32/int64, got {labels.dtype}")
    if scores.ndim != 2 or labels.ndim != 1:
        raise G.GraphcShapeError(f"{who}: expected scores of rank 2 (batch, classes) and labels "
                                 f"of rank 1 (batch,), got ranks {scores.ndim} and {labels.ndim}")


def softmax_cross_entropy(logits, labels, ignore_label=None):
    """Mean softmax cross-entropy; integer labels (or a target distribution per row)."""
    if labels.dtype in ("float32", "float64"):
        return G.mean(G.softmax_cross_entropy(logits, labels))
    _check_labels(logits, labels, "softmax_cross_entropy")
    if ignore_label is None:
        return G.mean(G.softmax_cross_entropy(logits, labels))
    keep = G.neq(labels, ignore_label)
    safe = G.where(keep, labels, G.zeros_like(labels))
    per = G.softmax_cross_entropy(logits, safe) * G.cast(keep, logits.dtype)
    count = G.maximum(G.sum(G.cast(keep, logits.dtype)), 1.0)
    return G.sum(per) / count


def sigmoid_cross_entropy(logits, targets, normalization="batch_size"):
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1] (stable form)."""
    return _batch_normalize(G.sigmoid_binary_crossentropy(logits, targets), normalization)


def euclidean(a, b, normalization="batch_size"):
    """Caffe's EuclideanLoss: 1/(2N) * sum ||a - b||^2."""
    d = a - b
    return 0.5 * _batch_normalize(d * d, normalization)


def hinge(scores, labels, norm=1, normalization="batch_size"):
    """Caffe's HingeLoss (one-vs-all): L1 (norm=1) or squared (norm=2) margins."""
    _check_labels(scores, labels, "hinge")
    if norm not in (1, 2):
        raise ValueError(f"hinge: norm must be 1 or 2, got {norm!r}")
    sign = 2.0 * G.one_hot(labels, scores.static_shape[1], scores.dtype) - 1.0
    margin = G.relu(1.0 - sign * scores)
    if norm == 2:
        margin = margin * margin
    return _batch_normalize(margin, normalization)


def accuracy(scores, labels, top_k=1, dtype=None):
    """Fraction of rows whose label is among the top_k scores (ties count against)."""
    _check_labels(scores, labels, "accuracy")
    dtype = dtype or G.config.floatX
    if top_k == 1:
        return G.mean(G.cast(G.eq(G.argmax(scores, axis=1), labels), dtype))
    n = scores.shape[0]
    true = scores[G.arange(n), labels]
    better = G.sum(G.cast(G.gt(scores, G.expand_dims(true, 1)), "int64"), axis=1)
    return G.mean(G.cast(G.lt(better, top_k), dtype))
