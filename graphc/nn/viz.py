"""Training curves and filter grids as PNG files: matplotlib when it is installed, otherwise
graphc.nn.png's raster canvas (no dependency).

    plot_curves("curve.png", [
        {"title": "train loss", "series": [("sgd", iters, losses)], "logy": True,
         "xlabel": "iteration"},
        {"title": "test accuracy", "series": [("sgd", test_iters, accs)]},
    ])
    save_filter_grid("conv1.png", W)     # W: (num_filters, channels, kh, kw)
"""
import math

import numpy as np

from .png import Canvas, write_png

__all__ = ["plot_curves", "filter_grid", "save_filter_grid", "have_matplotlib"]

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
          (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def _normalize_panels(panels):
    if isinstance(panels, dict):
        panels = [panels]
    out = []
    for p in panels:
        p = dict(p)
        p.setdefault("title", "")
        p.setdefault("xlabel", "")
        p.setdefault("ylabel", "")
        p.setdefault("logy", False)
        series = []
        for label, xs, ys in p["series"]:
            xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
            ok = np.isfinite(xs) & np.isfinite(ys)
            if p["logy"]:
                ok &= ys > 0
            series.append((label, xs[ok], ys[ok]))
        p["series"] = series
        out.append(p)
    return out


def plot_curves(path, panels, backend=None):
    """Write a PNG with one plot per panel (side by side). Returns the backend used."""
    panels = _normalize_panels(panels)
    backend = backend or ("matplotlib" if have_matplotlib() else "raster")
    if backend == "matplotlib":
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
        for ax, p in zip(axes[0], panels):
            for label, xs, ys in p["series"]:
                ax.plot(xs, ys, label=label, marker="o" if len(xs) < 30 else None, markersize=3)
            if p["logy"]:
                ax.set_yscale("log")
            ax.set_title(p["title"])
            ax.set_xlabel(p["xlabel"])
            ax.set_ylabel(p["ylabel"])
            ax.grid(alpha=0.3)
            if len(p["series"]) > 1 or p["series"] and p["series"][0][0]:
                ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return "matplotlib"
    w, h = 560, 400
    canvas = Canvas(w * len(panels), h)
    for k, p in enumerate(panels):
        _raster_panel(canvas, k * w, 0, w, h, p)
    canvas.save(path)
    return "raster"


def _nice_ticks(lo, hi, n=5):
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        if t >= lo - step * 1e-9:
            ticks.append(round(t, 12))
        t += step
    return ticks


def _tick_label(v):
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def _raster_panel(c, x0, y0, w, h, p):
    left, right, top, bottom = 70, 16, 34, 46
    px0, px1, py0, py1 = x0 + left, x0 + w - right, y0 + top, y0 + h - bottom
    c.text(x0 + w // 2, y0 + 10, p["title"], anchor="center")
    allx = np.concatenate([s[1] for s in p["series"]]) if p["series"] else np.zeros(0)
    ally = np.concatenate([s[2] for s in p["series"]]) if p["series"] else np.zeros(0)
    if allx.size == 0:
        allx, ally = np.array([0.0, 1.0]), np.array([0.0, 1.0]) if not p["logy"] else np.array([1.0, 10.0])
    fy = (lambda v: np.log10(v)) if p["logy"] else (lambda v: v)
    xlo, xhi = float(allx.min()), float(allx.max())
    if xhi <= xlo:
        xhi = xlo + 1.0
    ylo, yhi = float(fy(ally).min()), float(fy(ally).max())
    if yhi <= ylo:
        ylo, yhi = ylo - 0.5, yhi + 0.5
    pad = 0.05 * (yhi - ylo)
    ylo, yhi = ylo - pad, yhi + pad

    def sx(v):
        return px0 + (v - xlo) / (xhi - xlo) * (px1 - px0)

    def sy(v):
        return py1 - (v - ylo) / (yhi - ylo) * (py1 - py0)

    grid, axis = (232, 232, 232), (60, 60, 60)
    for t in _nice_ticks(xlo, xhi):
        X = sx(t)
        c.line(X, py0, X, py1, grid)
        c.line(X, py1, X, py1 + 4, axis)
        c.text(X, py1 + 8, _tick_label(t), axis, scale=2, anchor="center")
    if p["logy"]:
        yticks = [float(e) for e in range(math.floor(ylo), math.ceil(yhi) + 1) if ylo <= e <= yhi]
        if len(yticks) < 2:   # less than two decades: nice linear values, placed on the log axis
            yticks = [math.log10(v) for v in _nice_ticks(10 ** ylo, 10 ** yhi) if v > 0]
            yticks = [t for t in yticks if ylo <= t <= yhi]
        labels = [_tick_label(10 ** t) for t in yticks]
    else:
        yticks = _nice_ticks(ylo, yhi)
        labels = [_tick_label(t) for t in yticks]
    for t, lab in zip(yticks, labels):
        Y = sy(t)
        c.line(px0, Y, px1, Y, grid)
        c.line(px0 - 4, Y, px0, Y, axis)
        c.text(px0 - 8, Y - 5, lab, axis, scale=2, anchor="right")
    c.rect(px0, py0, px1, py1, axis, fill=False)
    c.text((px0 + px1) // 2, py1 + 26, p["xlabel"], axis, anchor="center")
    # Legend in the top right corner, or the bottom right when the curves end up high.
    ends = [sy(fy(ys[-1])) for _, _, ys in p["series"] if len(ys)]
    n_labels = sum(1 for s in p["series"] if s[0])
    legend_top = py0 + 8
    if ends and min(ends) < py0 + 16 * n_labels + 16:
        legend_top = py1 - 8 - 16 * n_labels
    for k, (label, xs, ys) in enumerate(p["series"]):
        color = COLORS[k % len(COLORS)]
        pts = [(sx(a), sy(b)) for a, b in zip(xs, fy(ys))]
        if len(pts) == 1:
            c.rect(pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2, color)
        for (a, b), (d, e) in zip(pts, pts[1:]):
            c.line(a, b, d, e, color, width=2)
        if len(pts) < 30:
            for a, b in pts:
                c.rect(a - 2, b - 2, a + 2, b + 2, color)
        if label:
            ly = legend_top + 16 * k
            c.rect(px1 - 150, ly + 2, px1 - 136, ly + 7, color)
            c.text(px1 - 130, ly, label, (40, 40, 40))


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

    def norm(a):
        lo, hi = a.min(), a.max()
        return np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)

    tiles = np.stack([norm(t) for t in tiles]) if per_filter else norm(tiles)
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    th, tw = kh * scale, kw * scale
    img = np.full((nrows * (th + pad) + pad, ncols * (tw + pad) + pad, tiles.shape[-1]), 255, np.uint8)
    for k in range(n):
        r, q = divmod(k, ncols)
        t = np.repeat(np.repeat(tiles[k], scale, axis=0), scale, axis=1)
        y, x = pad + r * (th + pad), pad + q * (tw + pad)
        img[y:y + th, x:x + tw] = np.round(t * 255).astype(np.uint8)
    return img[:, :, 0] if img.shape[-1] == 1 else img


def save_filter_grid(path, weights, ncols=None, scale=4, title=None):
    """Write filter_grid(weights) as PNG (with a title line when given)."""
    img = filter_grid(weights, ncols, scale)
    if title:
        rgb = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
        width = max(rgb.shape[1], Canvas.text_width(title) + 8)
        c = Canvas(width, rgb.shape[0] + 18)
        c.text(width // 2, 3, title, anchor="center")
        c.paste((width - rgb.shape[1]) // 2, 18, rgb)
        img = c.img
    write_png(path, img)
    return path
