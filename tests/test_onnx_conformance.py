"""ONNX's own backend node tests through graphc.onnx.backend (graphc/onnx/conformance.py): every
case of a supported operator passes, is skipped by load() with a reason (a dtype graphc lacks,
an attribute it does not implement, an opset before 13), or is listed in EXPECTED_FAILURES with
why. The whole set runs on the numpy reference target (no compiles: cheap); a sample that covers
every kernel kind also runs compiled, in float32 and float64 (`python -m graphc.onnx.conformance`
runs all of it, with float64 twins of every case).
ONNX's generators of the MaxPool and AveragePool cases take ~30 s (pure-python pooling), so the
suite leaves those two operators to the script; the model tests cover pooling."""
import pytest

pytest.importorskip("onnx", reason="graphc.onnx needs the onnx package (pip install 'graphc[onnx]')")

from graphc.onnx import conformance as C  # noqa: E402

SLOW_GENERATORS = ("MaxPool", "AveragePool")
C_SAMPLE = ["test_conv_with_strides_and_asymmetric_padding", "test_gemm_all_attributes",
            "test_globalaveragepool", "test_lrn", "test_softmax_axis_0",
            "test_layer_normalization_3d_axis1_epsilon", "test_matmul_4d", "test_slice_neg_steps",
            "test_gather_1", "test_reduce_mean_keepdims_random", "test_gelu_tanh_2",
            "test_batchnorm_epsilon", "test_convtranspose", "test_expand_dim_changed",
            "test_split_equal_parts_2d", "test_where_example", "test_lstm_bidirectional",
            "test_gru_seq_length", "test_scan9_multi_state_opset13", "test_if_opset13",
            "test_resize_upsample_scales_cubic", "test_einsum_batch_matmul",
            "test_loop11_opset13", "test_cast_FLOAT_to_FLOAT16", "test_convtranspose_3d"]


@pytest.fixture(scope="module")
def cases():
    return C.quiet_collect(exclude=SLOW_GENERATORS)


@pytest.fixture(scope="module")
def py_results(cases):
    return C.run(target="py", cases=cases, float64=False)


def test_every_supported_case_passes_or_says_why(py_results):
    failures = {n: r for n, (s, r, _) in py_results.items()
                if s == "fail" and n not in C.EXPECTED_FAILURES}
    assert not failures, failures
    passed = sum(1 for s, _, _ in py_results.values() if s == "pass")
    assert passed >= 520, passed  # ~550 with onnx 1.23
    for name, (status, reason, _) in py_results.items():
        if status == "skip":
            assert reason, name


def test_expected_failures_still_fail(py_results):
    """An entry of EXPECTED_FAILURES that passes (or no longer exists) should leave the list."""
    for name in C.EXPECTED_FAILURES:
        if name in py_results:
            assert py_results[name][0] == "fail", f"{name} now passes: remove it from the list"


def test_table_lists_ops_and_total(py_results):
    text = C.table(py_results)
    assert text.splitlines()[-1].startswith("total")
    for op in ("Conv", "Gemm", "LayerNormalization", "Softmax"):
        assert any(line.startswith(op + " ") for line in text.splitlines())


def test_compiled_sample(cases):
    """The sample compiled, as ONNX wrote it and as its float64 twin."""
    cases = {c.name: c for c in cases}
    missing = [n for n in C_SAMPLE if n not in cases]
    assert not missing, missing
    sample = [cases[n] for n in C_SAMPLE]
    sample += [c for c in map(C.as_float64, sample) if c is not None]
    assert len(sample) > 1.5 * len(C_SAMPLE)
    results = {c.name: C.run_case(c, "c") for c in sample}
    bad = {n: r for n, r in results.items() if r[0] != "pass"}
    assert not bad, bad


def test_cases_the_last_stop_skipped_now_pass(py_results):
    """A Loop whose trip count and condition are inputs and whose body slices by the iteration
    number; float16 casts (computed in float32, cast at the boundary); the 3-D ConvTranspose and
    ConvTranspose's output_shape and auto_pad."""
    for name in ("test_loop11_opset13", "test_cast_FLOAT_to_FLOAT16", "test_cast_FLOAT16_to_FLOAT",
                 "test_cast_DOUBLE_to_FLOAT16", "test_convtranspose_3d",
                 "test_convtranspose_output_shape", "test_convtranspose_autopad_same",
                 "test_convtranspose_kernel_shape"):
        assert py_results[name][0] == "pass", (name, py_results[name])
    for name in ("test_loop13_seq", "test_identity_sequence", "test_if_opt"):
        status, reason, _ = py_results[name]
        assert status == "skip" and "export the model with tensors" in reason, (name, reason)
