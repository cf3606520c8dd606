"""The CNN workloads of bench/ (bench/peers/cnn_common.py) are consistent: graphc's forward
(bench/graphc_cnn.py) consumes exactly the parameters the layer list declares, in order, with
their shapes, and ends in (batch, classes) logits. Graph building only: nothing is compiled."""
import os
import sys

import numpy as np
import pytest

import graphc as G

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import graphc_cnn  # noqa: E402
from bench.peers import cnn_common as CC  # noqa: E402


@pytest.mark.parametrize("name", sorted(CC.NETS))
def test_net_consumes_its_parameters_and_ends_in_logits(name):
    _, chw, classes, batch, *_ = CC.NETS[name]
    shapes = CC.param_shapes(name)
    params = [G.shared(np.zeros(s, np.float32), name=f"p{i}") for i, (_, s) in enumerate(shapes)]
    used = []

    class Recorder(list):
        def __iter__(self):
            for p in list.__iter__(self):
                used.append(p)
                yield p

    logits = graphc_cnn.forward(name, G.tensor("x", (batch,) + chw), Recorder(params))
    assert used == params
    assert tuple(logits.type.shape) == (batch, classes)
