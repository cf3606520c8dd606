"""Scan: the Loop that graphc.scan builds (Theano's scan, graphc/scan.py).

It is a Loop (same inputs, outputs, lowering to one C loop, gradient by back-propagation through
time) with two parameters more: `truncate_gradient` (the gradient flows through the last k steps
only; -1: all) and the user's `name`, which error messages and the dump show.
"""
from .loop import Loop


class Scan(Loop):
    __props__ = Loop.__props__ + ("truncate_gradient", "name")

    def __init__(self, body, n_seqs, n_carry, n_steps=None, reverse=False, truncate_gradient=-1,
                 name=None):
        super().__init__(body, n_seqs, n_carry, n_steps, reverse)
        self.truncate_gradient = int(truncate_gradient)
        self.name = name

    def __str__(self):
        what = f"{self.n_seqs} seqs, {self.n_carry} states"
        if self.truncate_gradient >= 0:
            what += f", truncate_gradient={self.truncate_gradient}"
        return f"Scan{{{self.name or 'scan'}: {what}, {self.body!r}}}"
