"""onnx's own backend node tests, through dlc.onnx_backend, for the ops dlc imports.

Which cases apply is decided from each case's graph and shapes (dlc.onnx_backend
explains the (batch, features) view, and when the whole static input is one example); the cases that do not apply are listed in
EXCLUDED, once, each with its reason.  Every applicable case runs through the
reference interpreter; a representative set (C_CASES) through the compiled C.
All of these cases are float32 (onnx has no float64 case for these ops).
"""
import re
import unittest
import warnings

import pytest

onnx_test = pytest.importorskip("onnx.backend.test")

from dlc.onnx_backend import DlcBackend  # noqa: E402

OUR_OPS = (r"^test_(gemm|matmul|add|sub|mul|div|relu|leakyrelu|sigmoid|tanh|elu|softmax"
           r"|logsoftmax|batchnorm|dropout|training_dropout|flatten|identity|clip)(_|$)")

# pattern -> why the case is outside what dlc represents today
EXCLUDED = {
    r"^test_(add|sub|mul|div)_u?int\d+": "integer tensors: dlc computes in float32 or float64",
    r"^test_clip_default_int8_": "integer tensors: dlc computes in float32 or float64",
    r"^test_matmul_(3d|4d|bcast|1d_3d|4d_1d|1d_1d)":
        "batched, broadcast or 1-D MatMul is not a Dense on (batch, features)",
    r"^test_(log)?softmax_axis_[01]_cpu$":
        "(log)softmax over the batch axis, or over a middle axis, is not one of each row",
    r"^test_flatten_(axis0|negative_axis4)": "Flatten at axis 0 folds the batch into the features",
    r"^test_(softmax|logsoftmax|leakyrelu|elu)_.*expanded":
        "the expanded form computes with ops dlc has no layer for (ReduceMax, Exp, Log, "
        "Where of a comparison...)",
    r"^test_clip_(?!default_inbounds_expanded|default_int8).*expanded":
        "the expanded form selects with Less and Where, ops dlc has no layer for",
    r"^test_(training_)?dropout_.*mask": "the mask output: several outputs, one of them bool",
    r"^test_training_dropout(_default)?_cpu$": "training-mode dropout draws random masks",
    r"^test_batchnorm_.*training_mode":
        "training mode: batch statistics and three outputs; dlc imports inference graphs",
    r"^test_identity_(sequence|opt)": "sequence and optional types: dlc has tensors only",
}

# A representative set that also goes through the compiled C (each builds a library).
C_CASES = {name: {"engine": "c"} for name in [
    "test_gemm_transposeB", "test_matmul_2d", "test_mul_bcast", "test_batchnorm_epsilon",
    "test_softmax_axis_2", "test_flatten_axis2", "test_clip", "test_leakyrelu",
    "test_relu_expanded_ver18", "test_dropout_default", "test_logsoftmax_axis_2",
    "test_gemm_transposeA", "test_add", "test_elu"]}


NODE = ".OnnxBackendNodeModelTest."


def backend_test():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # onnx builds its cases with NumPy casts that warn
        test = onnx_test.BackendTest(DlcBackend, __name__, test_kwargs=C_CASES)
    test.include(OUR_OPS)
    for pattern in EXCLUDED:
        test.exclude(pattern)
    return test


def run_suite(suite) -> unittest.TestResult:
    result = unittest.TestResult()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suite.run(result)
    return result


def skip_reason(result, test) -> str:
    return next((why for t, why in result.skipped if t is test), None)


def test_onnx_node_cases_of_our_ops(capsys):
    suite = backend_test().test_suite
    tests = [t for t in iterate(suite) if t.id().endswith("_cpu") and NODE in t.id()]
    result = run_suite(suite)
    ours = [t for t in tests if skip_reason(result, t) != "no matched include pattern"]
    excluded = [t for t in ours if (skip_reason(result, t) or "").startswith("matched exclude")]
    applicable = [t for t in ours if t not in excluded]
    failed = {t.id().rsplit(".", 1)[1]: text for t, text in result.failures + result.errors}
    passed = sum(t.id().rsplit(".", 1)[1] not in failed for t in applicable)
    with capsys.disabled():
        print(f"\nonnx node tests of dlc's ops: {passed} passed / {len(applicable)} applicable "
              f"/ {len(ours)} total ({len(excluded)} excluded)")
    assert not failed, "\n\n".join(f"{name}:\n{text}" for name, text in failed.items())
    used = {re.search(r'pattern "(.*)"', skip_reason(result, t)).group(1) for t in excluded}
    assert used == set(EXCLUDED), f"exclusions that match no case: {set(EXCLUDED) - used}"
    names = {t.id().rsplit(".", 1)[1] for t in applicable}
    assert {f"{name}_cpu" for name in C_CASES} <= names, "a C case is not applicable"
    assert passed >= 70


def iterate(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from iterate(item)
        else:
            yield item
