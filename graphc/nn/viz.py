"""Plots of training through matplotlib (an optional extra: pip install 'graphc[viz]'):
training curves, filter and activation grids (Caffe's vis_square), solver comparisons.

    plot_curves("curve.png", [
        {"title": "train loss", "series": [("sgd", iters, losses)], "logy": True,
         "xlabel": "iteration"},
        {"title": "test accuracy", "series": [("sgd", test_iters, accs)]},
    ])
    plot_training("training.png", trainer.history)   # loss, test metrics, learning rate
    save_filter_grid("conv1.png", W)                 # W: (num_filters, channels, kh, kw)
    save_activation_grid("conv1_out.png", blob[0])   # (channels, h, w)

Figures are drawn with matplotlib's object API on the Agg canvas: no pyplot, so a notebook's
backend is left alone. filter_grid and vis_square return the image arrays and need numpy only."""
import math
import os

import numpy as np

from ..errors import GraphcError

__all__ = ["plot_curves", "plot_training", "filter_grid", "vis_square", "save_filter_grid",
           "save_activation_grid", "have_matplotlib", "VizUnavailable"]

INSTALL_HINT = "pip install 'graphc[viz]' (or pip install matplotlib)"


class VizUnavailable(GraphcError, ImportError):
    """matplotlib is not installed."""


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def _figure(width, height):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise VizUnavailable(f"graphc.nn.viz draws with matplotlib, which is not installed: "
                             f"{INSTALL_HINT}") from None
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=100):
    os.makedirs(os.path.dirname(os.path.abspath(str(path))), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _normalize_panels(panels):
    if isinstance(panels, dict):
        panels = [panels]
    out = []
    for p in panels:
        if not isinstance(p, dict) or "series" not in p:
            raise ValueError(f"plot_curves: each panel is a dict with 'series' [(label, xs, ys)], "
                             f"got {p!r}")
        p = dict(p)
        for key in ("title", "xlabel", "ylabel"):
            p.setdefault(key, "")
        p.setdefault("logy", False)
        series = []
        for label, xs, ys in p["series"]:
            xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
            if xs.shape != ys.shape:
                raise ValueError(f"plot_curves: series {label!r} has {xs.size} x values and "
                                 f"{ys.size} y values")
            ok = np.isfinite(xs) & np.isfinite(ys)
            if p["logy"]:
                ok &= ys > 0
            series.append((label, xs[ok], ys[ok]))
        p["series"] = series
        out.append(p)
    return out


def plot_curves(path, panels, backend=None):
    """Write an image (format from the file name: .png, .svg, .pdf) with one plot per panel,
    side by side. A panel: {"title", "series": [(label, xs, ys)], "xlabel", "ylabel", "logy"}.
    Returns the path."""
    if backend not in (None, "matplotlib"):
        raise ValueError(f"plot_curves: backend {backend!r}: graphc plots with matplotlib only "
                         "(the raster backend was removed)")
    panels = _normalize_panels(panels)
    fig = _figure(5.5 * len(panels), 4)
    for k, p in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        for label, xs, ys in p["series"]:
            ax.plot(xs, ys, label=label, marker="o" if len(xs) < 30 else None, markersize=3)
        if p["logy"]:
            ax.set_yscale("log")
        ax.set_title(p["title"])
        ax.set_xlabel(p["xlabel"])
        ax.set_ylabel(p["ylabel"])
        ax.grid(alpha=0.3)
        if len(p["series"]) > 1 or (p["series"] and p["series"][0][0]):
            ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def plot_training(path, history, smooth=20):
    """A graphc.train.Trainer's history as curves: training loss (and its running mean over
    `smooth` iterations), every test metric, and the learning rate. Returns the path."""
    it, loss = np.asarray(history["iter"], float), np.asarray(history["loss"], float)
    k = max(1, min(smooth, len(loss)))
    series = [("loss", it, loss)]
    if k > 1:
        series.append((f"mean of {k}", it[k - 1:], np.convolve(loss, np.ones(k) / k, "valid")))
    panels = [{"title": "train loss", "xlabel": "iteration", "logy": bool((loss > 0).all()),
               "series": series}]
    tests = history.get("test") or []
    if tests:
        keys = [key for key in tests[0] if np.ndim(tests[0][key]) == 0]
        panels.append({"title": "test", "xlabel": "iteration",
                       "series": [(key, history["test_iter"], [t[key] for t in tests])
                                  for key in keys]})
    if history.get("lr"):
        panels.append({"title": "learning rate", "xlabel": "iteration",
                       "series": [("lr", it[:len(history["lr"])], history["lr"])]})
    return plot_curves(path, panels)


def _unit(a):
    lo, hi = a.min(), a.max()
    return np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)


def vis_square(data, padsize=1, padval=1.0):
    """Caffe's vis_square: (n, h, w) or (n, h, w, 3) tiled in an approximately square grid,
    rescaled to [0, 1] together, `padval` between tiles. Returns the image (float64)."""
    data = _unit(np.asarray(data, np.float64))
    if data.ndim not in (3, 4) or (data.ndim == 4 and data.shape[-1] != 3):
        raise ValueError(f"vis_square: expected (n, h, w) or (n, h, w, 3), got {data.shape}")
    n = int(math.ceil(math.sqrt(data.shape[0])))
    padding = ((0, n ** 2 - data.shape[0]), (0, padsize), (0, padsize)) + \
        ((0, 0),) * (data.ndim - 3)
    data = np.pad(data, padding, mode="constant", constant_values=padval)
    data = data.reshape((n, n) + data.shape[1:]).transpose((0, 2, 1, 3) + tuple(range(4, data.ndim + 1)))
    return data.reshape((n * data.shape[1], n * data.shape[3]) + data.shape[4:])


def filter_grid(weights, ncols=None, scale=4, pad=1, per_filter=True):
    """An image (uint8) tiling filters W (N, C, kh, kw): C == 3 as RGB, otherwise the first
    channel (or the mean over channels: pass W.mean(1, keepdims=True)) in gray. Each filter is
    rescaled to [0, 255] on its own (per_filter) or all together."""
    W = np.asarray(weights, np.float64)
    if W.ndim == 3:
        W = W[:, None]
    if W.ndim != 4:
        raise ValueError(f"filter_grid: expected (N, C, kh, kw), got {W.shape}")
    n, ch, kh, kw = W.shape
    tiles = W.transpose(0, 2, 3, 1) if ch == 3 else W[:, 0, :, :, None]
    tiles = np.stack([_unit(t) for t in tiles]) if per_filter else _unit(tiles)
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    th, tw = kh * scale, kw * scale
    img = np.full((nrows * (th + pad) + pad, ncols * (tw + pad) + pad, tiles.shape[-1]), 255,
                  np.uint8)
    for k in range(n):
        r, q = divmod(k, ncols)
        t = np.repeat(np.repeat(tiles[k], scale, axis=0), scale, axis=1)
        y, x = pad + r * (th + pad), pad + q * (tw + pad)
        img[y:y + th, x:x + tw] = np.round(t * 255).astype(np.uint8)
    return img[:, :, 0] if img.shape[-1] == 1 else img


def _save_image(path, img, title, cmap="gray", scale=1):
    h, w = img.shape[:2]
    dpi = 100
    fig = _figure(max(w * scale / dpi, 2.0), h * scale / dpi + (0.35 if title else 0.0))
    ax = fig.add_axes([0, 0, 1, 1 - (0.35 * dpi / (h * scale + 0.35 * dpi) if title else 0)])
    ax.imshow(img, cmap=None if img.ndim == 3 else cmap, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10, y=0.995, va="top")
    return _save(fig, path, dpi=dpi)


def save_filter_grid(path, weights, ncols=None, scale=4, title=None):
    """Write filter_grid(weights) as an image (with a title when given). Returns the path."""
    return _save_image(path, filter_grid(weights, ncols, scale), title)


def save_activation_grid(path, activations, title=None, scale=2):
    """Write a layer's output for one example, (channels, h, w), as vis_square's grid (one
    tile per channel). Returns the path."""
    a = np.asarray(activations)
    if a.ndim == 4:
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"save_activation_grid: expected (channels, h, w) or (N, channels, h, "
                         f"w), got {a.shape}")
    return _save_image(path, vis_square(a), title, scale=scale)
