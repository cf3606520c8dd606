"""graphc.nn.viz through matplotlib (the viz extra): curves, training history, filter and
activation grids; a clear error when matplotlib is absent. The hand-written PNG writer is gone."""
import importlib.util
import sys

import numpy as np
import pytest

from graphc.nn import viz

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is not installed (pip install "
                                      "'graphc[viz]')")


def _read(path):
    import matplotlib.image
    return matplotlib.image.imread(str(path))


def test_grids_are_numpy_only():
    grid = viz.filter_grid(np.random.RandomState(0).randn(6, 1, 5, 5), scale=2)
    assert grid.shape == (2 * 11 + 1, 3 * 11 + 1) and grid.dtype == np.uint8
    rgb = viz.filter_grid(np.random.RandomState(0).randn(4, 3, 3, 3))
    assert rgb.shape[2] == 3
    square = viz.vis_square(np.arange(5 * 4 * 3, dtype=float).reshape(5, 4, 3))
    assert square.shape == (3 * 5, 3 * 4)  # 5 tiles in a 3 x 3 grid, 1 pixel of padding
    assert square.min() == 0.0 and square.max() == 1.0
    np.testing.assert_allclose(square[:4, :3], np.arange(12).reshape(4, 3) / 59)
    with pytest.raises(ValueError, match=r"\(n, h, w\)"):
        viz.vis_square(np.zeros((2, 3)))


@needs_matplotlib
def test_plots_write_images(tmp_path):
    path = viz.plot_curves(tmp_path / "c.png", [
        {"title": "loss", "series": [("a", [0, 1, 2], [3, 2, 1]), ("b", [0, 1], [2, np.nan])],
         "logy": True},
        {"title": "accuracy", "series": [("", [0, 1], [0.5, 0.9])]}])
    img = _read(path)
    assert img.shape[1] > img.shape[0] > 100  # two panels side by side
    hist = {"iter": list(range(30)), "loss": list(np.linspace(2, 1, 30)), "lr": [0.1] * 30,
            "test_iter": [0, 29], "test": [{"accuracy": 0.1}, {"accuracy": 0.9}]}
    assert _read(viz.plot_training(tmp_path / "t.png", hist)).shape[1] > 3 * 300
    assert _read(viz.save_filter_grid(tmp_path / "f.png", np.random.randn(6, 3, 5, 5),
                                      title="conv1")).shape[2] in (3, 4)
    viz.save_activation_grid(tmp_path / "a.svg", np.random.randn(2, 8, 6, 6), title="conv1 out")
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError, match="raster backend was removed"):
        viz.plot_curves(tmp_path / "x.png", {"series": []}, backend="raster")
    with pytest.raises(ValueError, match="3 x values and 2 y values"):
        viz.plot_curves(tmp_path / "x.png", {"series": [("s", [1, 2, 3], [1, 2])]})


def test_without_matplotlib_the_error_says_how_to_install(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert not viz.have_matplotlib()
    with pytest.raises(viz.VizUnavailable, match=r"pip install 'graphc\[viz\]'"):
        viz.plot_curves(tmp_path / "c.png", [{"series": [("a", [0, 1], [1, 0])]}])
    with pytest.raises(ImportError):  # (an ImportError too, for code that catches those)
        viz.save_filter_grid(tmp_path / "f.png", np.ones((1, 1, 2, 2)))
    assert not (tmp_path / "c.png").exists()


def test_the_raster_code_is_gone():
    assert importlib.util.find_spec("graphc.nn.png") is None
