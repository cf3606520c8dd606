"""graphc.nn.viz through matplotlib (the viz extra): curves, training history, filter and
activation grids; a clear error when matplotlib is absent. The hand-written PNG writer is gone."""
import importlib.util
import os
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


def _example(name):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                        f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _history(n=30, seed=0):
    r = np.random.RandomState(seed)
    return {"iter": list(range(n)), "loss": list(np.linspace(2, 1, n) + r.rand(n) * 0.1),
            "test_iter": [0, 10, 20, 29],
            "test": [{"cross_entropy_loss": 2.0 - t, "l2_error": 1.0 - t / 2, "accuracy": t}
                     for t in (0.1, 0.5, 0.7, 0.8)]}


class _Trainer:
    history = _history()


class _Net:
    params = {"conv1.W": type("P", (), {"get_value": staticmethod(
        lambda: np.random.RandomState(1).randn(20, 1, 5, 5).astype("float32"))})()}


def _hide_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@needs_matplotlib
def test_example_pictures_solver_comparison_and_activation_grid(tmp_path):
    """The autoencoder's solvers on one figure (a line per solver in each of three panels); the
    LeNet example's curves, filters and conv1 activation grid."""
    ae = _example("mnist_autoencoder")
    results = {name: {"history": _history(seed=k)}
               for k, name in enumerate(("sgd", "nesterov", "adagrad"))}
    path = ae.write_solver_comparison(str(tmp_path / "solvers.svg"), results, per_epoch=0.1)
    svg = (tmp_path / "solvers.svg").read_text()
    assert path and all(name in svg for name in results) and "test L2 error" in svg
    lenet = _example("lenet_mnist")
    acts = np.random.RandomState(2).rand(20, 24, 24).astype("float32")
    lenet.write_plots(str(tmp_path), _Trainer, _Net, activations=acts)
    img = _read(tmp_path / "lenet_conv1_activations.png")
    assert img.shape[0] > 4 * 24 and img.shape[1] > 4 * 24  # 20 tiles, 5 x 5 grid, scale 4
    assert (tmp_path / "lenet_curve.png").exists() and (tmp_path / "lenet_conv1.png").exists()


def test_example_pictures_without_matplotlib_say_how_to_install(tmp_path, monkeypatch, capsys):
    ae, lenet = _example("mnist_autoencoder"), _example("lenet_mnist")
    _hide_matplotlib(monkeypatch)
    assert ae.write_solver_comparison(str(tmp_path / "s.png"), {"sgd": {"history": _history()}},
                                      per_epoch=0.1) is None
    lenet.write_plots(str(tmp_path), _Trainer, _Net, activations=np.ones((20, 24, 24)))
    out = capsys.readouterr().out
    assert out.count("pip install 'graphc[viz]'") == 2
    assert not list(tmp_path.iterdir())
