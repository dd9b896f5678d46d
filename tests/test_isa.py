"""Kernels for the CPU they run on: models compiled at every vector width (forced with
-DDLC_VEC_BYTES, wider than this CPU's too) against the reference interpreter, inference
and training; and export_c(isa=...): every ISA compiles under the strict flags with gcc
and clang, the dispatching export picks the widest ISA this CPU runs and each variant
forced by <name>_set_isa agrees with the portable code and the reference.

Tolerances: float32 models within rtol 1e-5 of the float64 reference (inference: a few
hundred products of O(1) values); 3 training steps within 1e-4 (as in
test_train_c_vs_reference); float64 to 1e-10.
"""
import ctypes
import re
import subprocess

import numpy as np
import pytest

import dlc
from dlc.export import export_c
from dlc.targets.isa import ERR_ISA, ISAS, LEVELS, host_level
from dlc.train import compile_trainer, reference_trainer

WIDTH_FLAGS = {
    "w64": ("-O2", "-march=native", "-DDLC_VEC_BYTES=64"),
    "w32": ("-O3", "-march=native", "-DDLC_VEC_BYTES=32"),
    "w16": ("-O3", "-march=native", "-DDLC_VEC_BYTES=16"),
    "scalar": ("-O2", "-DDLC_SCALAR_GEMM"),
}
RTOL = {"float32": 1e-5, "float64": 1e-10}
TRAIN_TOL = {"float32": 1e-4, "float64": 1e-10}
STRICT = ("-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror")


def make_net(dtype, softmax_classes=10):
    """Products with whole and edge tiles at every width (70 inputs, 90 and 33 units, and
    a 10-class softmax that takes the turned kernel), batch norm and dropout."""
    return dlc.Sequential([dlc.Input(70), dlc.Dense(90), dlc.ReLU(), dlc.BatchNorm(),
                           dlc.Dropout(keep_prob=0.8), dlc.Dense(33), dlc.Tanh(),
                           dlc.Dense(softmax_classes), dlc.Softmax()], dtype=dtype, seed=5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", sorted(WIDTH_FLAGS))
def test_inference_at_every_width_equals_reference(width, dtype):
    net = make_net(dtype)
    X = np.random.default_rng(0).normal(size=(203, 70)).astype(dtype)
    model = dlc.compile(net, flags=WIDTH_FLAGS[width])
    expected = dlc.reference(net).predict(X)
    for rows in (1, 3, 203):
        np.testing.assert_allclose(model.predict(X[:rows]), expected[:rows], rtol=RTOL[dtype],
                                   atol=RTOL[dtype] / 10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", sorted(WIDTH_FLAGS))
def test_training_at_every_width_equals_reference(width, dtype):
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(150, 70)), rng.integers(0, 10, 150)
    trainers = []
    for make, options in ((compile_trainer, dict(flags=WIDTH_FLAGS[width])),
                          (reference_trainer, {})):
        trainer = make(make_net(dtype), loss="cross_entropy", optimizer=dlc.Adam(lr=0.01),
                       **options)
        trainer.fit(X, Y, epochs=1, batch_size=64, seed=3, progress=False)
        trainers.append(trainer)
    c, ref = trainers
    assert c.step == ref.step == 3
    for name, expected in ref.views.items():
        np.testing.assert_allclose(c.views[name], expected, rtol=TRAIN_TOL[dtype],
                                   atol=TRAIN_TOL[dtype], err_msg=name)


# ---------------------------------------------------------------- export_c(isa=...)

@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("isa", ISAS)
def test_every_isa_exports_strict_c99(isa, cc, tmp_path):
    export_c(make_net("float32"), tmp_path, name="net", isa=isa)
    done = subprocess.run([cc, *STRICT, "-O2", "-c", str(tmp_path / "net.c"), "-o",
                           str(tmp_path / "net.o")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def load_export(directory, cc="gcc", name="net"):
    library = directory / f"lib{name}.so"
    subprocess.run([cc, *STRICT, "-O2", "-shared", "-fPIC", str(directory / f"{name}.c"),
                    "-o", str(library), "-lm"], check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(library))
    if hasattr(lib, "net_set_isa"):
        lib.net_set_isa.argtypes = [ctypes.c_char_p]
        lib.net_isa.restype = ctypes.c_char_p
    size, = re.findall(rf"#define {name.upper()}_WORKSPACE_BYTES (\d+)",
                       (directory / f"{name}.h").read_text())
    lib.workspace = ctypes.create_string_buffer(int(size))    # the caller's, as documented
    return lib


def predict(lib, X, n_outputs=10):
    y = np.full((X.shape[0], n_outputs), np.nan, X.dtype)
    status = lib.net_predict(X.ctypes.data_as(ctypes.c_void_p), y.ctypes.data_as(ctypes.c_void_p),
                             ctypes.c_size_t(X.shape[0]), lib.workspace)
    assert status == 0
    return y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_dispatch_picks_the_widest_and_each_forced_variant_agrees(cc, dtype, tmp_path):
    net = make_net(dtype)
    export_c(net, tmp_path, name="net", isa="dispatch")
    assert "ISAs inside: x86-64-v4" in (tmp_path / "net.h").read_text()
    lib = load_export(tmp_path, cc)
    assert lib.net_isa().decode() == host_level()
    X = np.random.default_rng(2).normal(size=(150, 70)).astype(dtype)
    expected = dlc.reference(net).predict(X)
    assert lib.net_set_isa(b"portable") == 0 and lib.net_isa() == b"portable"
    baseline = predict(lib, X)
    np.testing.assert_allclose(baseline, expected, rtol=RTOL[dtype], atol=RTOL[dtype] / 10)
    runs = {"x86-64-v4": host_level() == "x86-64-v4",
            "x86-64-v3": host_level() in ("x86-64-v3", "x86-64-v4")}
    for isa in LEVELS:
        status = lib.net_set_isa(isa.encode())
        if not runs[isa]:
            assert status == ERR_ISA and lib.net_isa() != isa.encode()
            continue
        assert status == 0 and lib.net_isa() == isa.encode()
        np.testing.assert_allclose(predict(lib, X), baseline, rtol=RTOL[dtype],
                                   atol=RTOL[dtype] / 10, err_msg=isa)
    assert lib.net_set_isa(b"avx9000") == ERR_ISA
    assert lib.net_set_isa(None) == 0 and lib.net_isa().decode() == host_level()


@pytest.mark.parametrize("isa", ["native", "x86-64-v3"])
def test_a_named_level_export_equals_the_reference(isa, tmp_path):
    """x86-64-v3 runs here only where the CPU has AVX2 (host_level says so); on an older CPU
    the export is still compiled by the test above."""
    net = make_net("float32")
    export_c(net, tmp_path, name="net", isa=isa)
    header = (tmp_path / "net.h").read_text()
    level = host_level() if isa == "native" else isa
    assert (f"Kernels built for {level}" in header) == (level != "portable")
    runs = {"portable": True, "x86-64-v3": host_level() in ("x86-64-v3", "x86-64-v4"),
            "x86-64-v4": host_level() == "x86-64-v4"}
    if runs[level]:
        lib = load_export(tmp_path)
        X = np.random.default_rng(3).normal(size=(77, 70)).astype(np.float32)
        np.testing.assert_allclose(predict(lib, X), dlc.reference(net).predict(X), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("bad, error, message", [
    ("avx9000", ValueError, "isa must be one of"),
    ("x86-64", ValueError, "isa must be one of"),
    (64, TypeError, "isa must be a string"),
])
def test_a_bad_isa_is_named(bad, error, message, tmp_path):
    with pytest.raises(error, match=message):
        export_c(make_net("float32"), tmp_path, name="net", isa=bad)


@pytest.mark.parametrize("target", ["generic", "cortex-m4"])
def test_a_plain_target_takes_only_the_portable_isa(target, tmp_path):
    with pytest.raises(ValueError, match=f"target '{target}' takes only isa='portable'"):
        export_c(make_net("float32"), tmp_path, name="net", target=target, isa="dispatch")


@pytest.mark.parametrize("flags, level", [
    ("fpu sse2 avx avx2 fma bmi1 bmi2 avx512f avx512bw avx512cd avx512dq avx512vl", "x86-64-v4"),
    ("fpu sse2 avx avx2 fma bmi1 bmi2 avx512f", "x86-64-v3"),
    ("fpu sse2 avx", "portable"),
    ("", "portable"),
])
def test_host_level_reads_the_cpu_flags(flags, level):
    assert host_level(f"processor : 0\nflags\t\t: {flags}\n") == level
