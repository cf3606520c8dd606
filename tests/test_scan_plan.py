"""The memory plan of a scan training step (the LSTM of bench/): the step's temporaries live in
the loop body's one region, the saved states are buffers of T steps, nothing is per step, so
the plan grows linearly in T; from a modest T on it is no larger than the unrolled step's plan."""
import functools

import sympy

from program_cases import bench_step_program

SMALL = dict(batch=4, n_in=8, n_hidden=16)


def _plan(builder, T):
    from bench import graphc_impl
    name = f"_{builder}_{T}"
    setattr(graphc_impl, name, functools.partial(getattr(graphc_impl, builder), seq_len=T, **SMALL))
    try:
        return bench_step_program(name)
    finally:
        delattr(graphc_impl, name)


def test_plan_grows_linearly_in_T_and_stays_below_the_unrolled_one():
    sizes = {T: int(_plan("lstm_step", T).workspace_bytes) for T in (4, 8, 16)}
    # affine in T (the planner's sharing and alignment move it by a few hundred bytes)
    step = sizes[8] - sizes[4]
    assert step > 0 and abs((sizes[16] - sizes[8]) - 2 * step) <= 0.05 * 2 * step, sizes
    # the loops' fixed cost (their regions, the states' double buffers) is paid back by T = 16
    # here (the bench LSTM at T = 32: 22.6 MB against 24.8 MB, bench/README.md)
    assert sizes[16] <= int(_plan("lstm_step_unrolled", 16).workspace_bytes)


def test_loop_bodies_plan_their_own_region_once():
    program = _plan("lstm_step", 8)
    loops = [k for k in program.kernels if k.kind == "loop"]
    assert len(loops) == 2  # forward and back-propagation through time
    for k in loops:
        body = k.params["body"]
        region = k.scratch[0]
        assert sympy.simplify(region.nbytes - body.workspace_bytes) == 0
        # no body buffer is sized by the trip count: nothing grows per step
        assert all(8 not in b.shape for b in body.buffers if b.role == "temp")
