"""Standalone C export: the exported C, compiled strictly (and under sanitizers and
valgrind), equals the NumPy reference on the original (unoptimised) model."""
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.targets.export import c_literal
from dlc.export import check_name
from dlc.inspect import measure_code_size
from helpers import COMPILERS, assert_matches, random_model, randomize_batchnorm

HERE = Path(__file__).resolve().parent
EMBED_EXAMPLE = HERE.parent / "examples" / "embed_c"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2"]
# The sanitizer builds also take the opt-in internal workspace (a NULL workspace then uses it).
SANITIZE = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O1", "-g",
            "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-DMODEL_STATIC_WORKSPACE"]
# LeakSanitizer needs ptrace, which containers often forbid; valgrind checks leaks.
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1"}


def sequential(layers, dtype, seed=0):
    net = dlc.Sequential(layers, dtype=dtype, seed=seed)
    randomize_batchnorm(net, np.random.default_rng(seed))
    return net


def bn_dropout_normalize(dtype):
    rng = np.random.default_rng(1)
    return sequential([
        dlc.Input(20), dlc.Normalize(mean=rng.normal(size=20), var=rng.uniform(0.5, 2, 20)),
        dlc.Dense(32), dlc.BatchNorm(), dlc.ReLU(), dlc.Dropout(0.7),
        dlc.Dense(16), dlc.BatchNorm(eps=1e-3), dlc.Tanh(), dlc.Dropout(0.5),
        dlc.Dense(10), dlc.Softmax()], dtype)


def every_activation(dtype):
    return sequential([
        dlc.Input(9), dlc.Dense(17), dlc.LeakyReLU(alpha=0.1), dlc.Dense(15), dlc.Sigmoid(),
        dlc.Dense(14), dlc.Tanh(), dlc.Dense(13), dlc.ReLU(), dlc.Dense(5), dlc.Softmax()],
        dtype)


def unfoldable(dtype):
    """A BatchNorm with no Dense before it and a Normalize feeding no Dense stay."""
    rng = np.random.default_rng(2)
    return sequential([
        dlc.Input(12), dlc.BatchNorm(), dlc.Tanh(),
        dlc.Normalize(mean=rng.normal(size=12), var=rng.uniform(0.5, 2, 12)), dlc.ReLU(),
        dlc.Dense(7), dlc.Sigmoid(), dlc.BatchNorm(), dlc.Dense(3)], dtype)


def identity(dtype):
    """Nothing but dropout: after the passes the output is the input."""
    return sequential([dlc.Input(6), dlc.Dropout(0.5)], dtype)


MODELS = {
    "bn_dropout_normalize": bn_dropout_normalize,
    "every_activation": every_activation,
    "unfoldable": unfoldable,
    "identity": identity,
    "random3": lambda dtype: random_model(np.random.default_rng(3), dtype, max_width=80),
    "random8": lambda dtype: random_model(np.random.default_rng(8), dtype, max_width=80),
    "many_classes": lambda dtype: sequential([dlc.Input(70), dlc.Dense(300), dlc.ReLU(),
                                              dlc.Dense(70), dlc.Softmax()], dtype),
}


def compile_c(sources, output, flags, include, cc="gcc"):
    command = [cc, *flags, f"-I{include}", *map(str, sources), "-o", str(output), "-lm"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr}"
    assert not done.stderr, done.stderr
    return output


def run(command, env=None, check=True):
    done = subprocess.run(list(map(str, command)), capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})
    if check:
        assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stderr}"
    return done


def predict_with_driver(exported, X, tmp_path, flags, env=None, cc="gcc", runner=()):
    """The driver's three predictions (internal workspace, own workspace, row by row);
    ``runner`` prefixes its command (an emulator)."""
    binary = compile_c([HERE / "c" / "export_driver.c", exported.source],
                       tmp_path / f"driver{len(flags)}", flags, exported.source.parent, cc)
    dtype = X.dtype if exported.output_dtype is None else exported.output_dtype
    (tmp_path / "x.bin").write_bytes(X.tobytes())
    args = [*runner, binary, tmp_path / "x.bin", tmp_path / "y.bin", len(X)]
    run(args + ([exported.weights] if exported.weights else []), env)
    y = np.fromfile(tmp_path / "y.bin", dtype)
    return y.reshape(3, len(X), exported.n_outputs)


def inputs_for(net, n=150, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, net.n_inputs)) * 2).astype(net.dtype)



@pytest.mark.parametrize("cc", COMPILERS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_exported_c_equals_reference(model, dtype, cc, tmp_path):
    net = MODELS[model](dtype)
    exported = dlc.export_c(net, tmp_path / "out", name="model")
    X = inputs_for(net)
    expected = dlc.reference(net).predict(X)
    scale = max(1.0, np.abs(expected).max())
    internal, own, row_by_row = predict_with_driver(exported, X, tmp_path, STRICT, cc=cc)
    assert_matches(internal, expected, dtype, what=f"{model} exported C", scale=scale)
    np.testing.assert_array_equal(own, internal)
    assert_matches(row_by_row, expected, dtype, what=f"{model} one row at a time", scale=scale)
    sanitized = predict_with_driver(exported, X, tmp_path, SANITIZE, SANITIZER_ENV, cc)
    for got, how in zip(sanitized, ("internal workspace", "own workspace", "row by row")):
        assert_matches(got, expected, dtype, what=f"{model} under sanitizers, {how}",
                       scale=scale)


@pytest.mark.parametrize("cc", COMPILERS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_native_vector_paths_are_clean_under_sanitizers(model, dtype, cc, tmp_path):
    """The export's default flags take the 16-byte vector paths; built for this machine it
    takes the AVX ones (the 8-float micro-kernel, softmax on its side), checked here."""
    net = MODELS[model](dtype)
    exported = dlc.export_c(net, tmp_path / "out", name="model")
    X = inputs_for(net)
    expected = dlc.reference(net).predict(X)
    scale = max(1.0, np.abs(expected).max())
    sanitized = predict_with_driver(exported, X, tmp_path, SANITIZE + ["-march=native"],
                                    SANITIZER_ENV, cc)
    for got, how in zip(sanitized, ("internal workspace", "own workspace", "row by row")):
        assert_matches(got, expected, dtype, what=f"{model} native, {how}", scale=scale)


@pytest.mark.parametrize("cc", COMPILERS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_file_gives_the_same_bits_as_baked_weights(dtype, cc, tmp_path):
    """The binary file is exact, so equal outputs prove the C literals round-trip exactly."""
    net = bn_dropout_normalize(dtype)
    baked = dlc.export_c(net, tmp_path / "baked", name="model")
    loaded = dlc.export_c(net, tmp_path / "file", name="model", weights="file")
    assert loaded.weights.stat().st_size == 16 + loaded.weights_bytes
    assert "static const" not in loaded.source.read_text()
    X = inputs_for(net)
    from_file = predict_with_driver(loaded, X, tmp_path, STRICT, cc=cc)
    np.testing.assert_array_equal(from_file, predict_with_driver(baked, X, tmp_path, STRICT,
                                                                 cc=cc))
    assert_matches(from_file[0], dlc.reference(net).predict(X), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_c_literals_round_trip_exactly(dtype):
    rng = np.random.default_rng(0)
    info = np.finfo(dtype)
    values = np.concatenate([rng.normal(size=2000) * 10.0 ** rng.integers(-30, 30, 2000),
                             [0.0, -0.0, 1.0, 3.0, -2.5, info.max, info.tiny,
                              info.smallest_subnormal, info.eps]]).astype(dtype)
    code = "f32" if dtype == np.float32 else "f64"
    for value in values:
        text = c_literal(value, code)
        assert re.fullmatch(r"-?[0-9.]+(e[-+][0-9]+)?f?", text) and ("." in text or "e" in text)
        back = dtype(float(text.rstrip("f")))
        assert back == value and np.signbit(back) == np.signbit(value), (value, text)


@pytest.mark.parametrize("cc", COMPILERS)
def test_two_exported_models_link_into_one_program(cc, tmp_path):
    alpha, beta = bn_dropout_normalize("float32"), every_activation("float64")
    ea = dlc.export_c(alpha, tmp_path, name="alpha")
    eb = dlc.export_c(beta, tmp_path, name="beta")
    program = compile_c([HERE / "c" / "two_models.c", ea.source, eb.source],
                        tmp_path / "two_models",
                        STRICT + ["-DALPHA_STATIC_WORKSPACE", "-DBETA_STATIC_WORKSPACE"],
                        tmp_path, cc)
    Xa, Xb = inputs_for(alpha, 70, seed=1), inputs_for(beta, 70, seed=2)
    (tmp_path / "a.bin").write_bytes(Xa.tobytes())
    (tmp_path / "b.bin").write_bytes(Xb.tobytes())
    run([program, tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "y.bin", 70])
    raw = (tmp_path / "y.bin").read_bytes()
    split = 70 * ea.n_outputs * 4
    ya = np.frombuffer(raw[:split], np.float32).reshape(70, -1)
    yb = np.frombuffer(raw[split:], np.float64).reshape(70, -1)
    assert_matches(ya, dlc.reference(alpha).predict(Xa), np.float32, what="alpha")
    assert_matches(yb, dlc.reference(beta).predict(Xb), np.float64, what="beta")


def mnist_mlp():
    return sequential([dlc.Input(784), dlc.Dense(256), dlc.BatchNorm(), dlc.ReLU(),
                       dlc.Dropout(0.8), dlc.Dense(256), dlc.BatchNorm(), dlc.ReLU(),
                       dlc.Dropout(0.8), dlc.Dense(10)], "float32")


@pytest.mark.parametrize("tile_rows", [1, 64])
def test_workspace_holds_two_activations_per_row(tile_rows, tmp_path):
    exported = dlc.export_c(mnist_mlp(), tmp_path, name="mnist", tile_rows=tile_rows)
    report = exported.inspection
    per_row = report.arena_bytes / tile_rows / 4
    assert per_row <= 2 * 256, f"{per_row} values per row"
    header = exported.header.read_text()
    assert f"#define MNIST_WORKSPACE_BYTES {exported.workspace_bytes}\n" in header
    assert report.workspace_bytes == exported.workspace_bytes
    assert report.workspace_bytes == report.arena_bytes + report.block_bytes
    assert report.arena_values_per_row == per_row


def test_code_size_and_weights_bytes_are_reported(tmp_path):
    net = mnist_mlp()
    exported = dlc.export_c(net, tmp_path, name="mnist")
    # The weight matrices are stored in 16-column panels: the last one padded to 256 x 16.
    folded_values = 784 * 256 + 256 + 256 * 256 + 256 + 256 * 16 + 10
    assert folded_values * 4 <= exported.weights_bytes <= (folded_values + 6 * 16) * 4
    size = exported.code_size()
    assert 0 < size.text < 200_000
    assert exported.weights_bytes <= size.rodata < exported.weights_bytes + 4096
    assert size.bss == 0                                  # no hidden workspace
    static = measure_code_size(exported.source, flags=[*dlc.export.EXPORT_FLAGS,
                                                       "-DMNIST_STATIC_WORKSPACE"])
    assert static.bss >= exported.workspace_bytes         # the opt-in internal one
    report = dlc.inspect(net, code_size=True)
    assert (report.code_bytes, report.constant_bytes) == (size.text, size.rodata)
    assert f"code bytes: {size.text} text + {size.rodata} constants" in str(report)


@pytest.mark.parametrize("cc", COMPILERS)
def test_exported_code_needs_no_allocation_and_only_standard_headers(cc, tmp_path):
    exported = dlc.export_c(bn_dropout_normalize("float32"), tmp_path, name="model")
    loaded = dlc.export_c(bn_dropout_normalize("float32"), tmp_path / "w", name="model",
                          weights="file")
    for source in (exported.source, loaded.source):
        includes = set(re.findall(r"#include\s*([<\"][^>\"]+[>\"])", source.read_text()))
        assert includes <= {"<math.h>", "<stddef.h>", "<string.h>", "<stdint.h>", "<stdio.h>",
                            '"model.h"'}, includes
        obj = tmp_path / "model.o"
        run([cc, *STRICT, "-c", f"-I{source.parent}", source, "-o", obj])
        undefined = run(["nm", "-u", obj]).stdout.split()
        assert not [s for s in undefined if re.search(r"alloc|free", s)], undefined
    assert "-march=native" not in " ".join(dlc.export.EXPORT_FLAGS)


def test_header_documents_the_api_and_the_ir_summary(tmp_path):
    net = bn_dropout_normalize("float64")
    exported = dlc.export_c(net, tmp_path, name="digits")
    header = exported.header.read_text()
    for macro in ("DIGITS_N_INPUTS 20", "DIGITS_N_OUTPUTS 10", "DIGITS_WORKSPACE_BYTES",
                  "DIGITS_OK 0", "DIGITS_ERR_NULL (-1)", "DIGITS_ERR_BATCH (-2)"):
        assert f"#define {macro}" in header
    assert ("int digits_predict(const double *x, double *y, size_t batch, void *workspace);"
            in header)
    for line in exported.inspection.summary_lines():
        assert line in header
    after = header.split("Model IR after")[1]
    assert "= batchnorm(" not in after and "= dropout(" not in after and "= dense(" in after
    assert "removed 2 batchnorm, 2 dropout, 1 normalize" in header


@pytest.mark.parametrize("name", ["", "2fast", "my-model", "a b", "int", "static", "_Bool",
                                  "__x", "_Model", "dlc", "dlc_net", "caf\u00e9", "x;y"])
def test_bad_names_are_rejected_before_anything_is_written(name, tmp_path):
    with pytest.raises(ValueError, match="export name"):
        dlc.export_c(identity("float32"), tmp_path / "out", name=name)
    assert not (tmp_path / "out").exists()


def test_bad_arguments_are_rejected(tmp_path):
    net = identity("float32")
    with pytest.raises(TypeError, match="export name"):
        check_name(3)
    with pytest.raises(ValueError, match="weights"):
        dlc.export_c(net, tmp_path, name="m", weights="json")
    with pytest.raises(ValueError, match="tile_rows"):
        dlc.export_c(net, tmp_path, name="m", tile_rows=0)
    with pytest.raises(TypeError, match="dlc.Model"):
        dlc.export_c("not a model", tmp_path, name="m")


def digits_like(dtype="float32"):
    rng = np.random.default_rng(5)
    return sequential([
        dlc.Input(64), dlc.Normalize(mean=rng.uniform(0, 8, 64), var=rng.uniform(1, 20, 64)),
        dlc.Dense(48), dlc.BatchNorm(), dlc.ReLU(), dlc.Dropout(0.8), dlc.Dense(10),
        dlc.Softmax()], dtype)


def build_example(model_dir, build_dir, extra_cflags=(), cc="gcc"):
    # DWARF 4: Debian's valgrind 3.19 cannot read the DWARF 5 that clang 14 writes by default.
    cflags = " ".join(STRICT + ["-g", "-gdwarf-4", *extra_cflags])
    run(["make", "-s", "-C", EMBED_EXAMPLE, f"MODEL_DIR={model_dir}", f"BUILD_DIR={build_dir}",
         f"CC={cc}", f"CFLAGS={cflags}"])
    return build_dir / "predict"


@pytest.mark.parametrize("cc", COMPILERS)
def test_embed_example_equals_python_and_is_clean_under_valgrind(cc, tmp_path):
    """valgrind comes from the system packages (.ci/run installs it)."""
    net = digits_like()
    dlc.export_c(net, tmp_path / "model", name="digits")
    program = build_example(tmp_path / "model", tmp_path / "build", cc=cc)
    X = np.random.default_rng(9).uniform(0, 16, size=(200, 64))
    np.savetxt(tmp_path / "rows.txt", X, fmt="%.17g")
    done = run(["valgrind", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite", program, tmp_path / "rows.txt"])
    assert "ERROR SUMMARY: 0 errors" in done.stderr
    assert re.search(r"definitely lost: 0 bytes|All heap blocks were freed", done.stderr)
    printed = np.loadtxt(done.stdout.splitlines(), ndmin=2)
    classes, probabilities = printed[:, 0].astype(int), printed[:, 1:]
    expected = dlc.reference(net).predict(X)
    assert_matches(probabilities, expected, np.float32, what="example program")
    np.testing.assert_array_equal(classes, probabilities.argmax(axis=1))
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    np.testing.assert_array_equal(classes[clear], expected.argmax(axis=1)[clear])


def test_embed_example_reports_a_truncated_row(tmp_path):
    dlc.export_c(digits_like(), tmp_path / "model", name="digits")
    program = build_example(tmp_path / "model", tmp_path / "build")
    (tmp_path / "rows.txt").write_text(" ".join(["1"] * 64 + ["2"] * 10))
    done = run([program, tmp_path / "rows.txt"], check=False)
    assert done.returncode == 1 and "inside row 2" in done.stderr
    assert len(done.stdout.splitlines()) == 1       # the complete row was still predicted


@pytest.mark.parametrize("cc", COMPILERS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("gemm_flags", [["-DDLC_SCALAR_GEMM"],
                                        ["-DDLC_MC=6", "-DDLC_NC=16", "-DDLC_KC=3"]])
def test_small_stack_builds_of_exported_c(gemm_flags, dtype, cc, tmp_path):
    """The scalar matrix multiply, and blocks smaller than the ones the workspace is
    planned for."""
    net = bn_dropout_normalize(dtype)
    exported = dlc.export_c(net, tmp_path / "out", name="model")
    X = inputs_for(net)
    expected = dlc.reference(net).predict(X)
    got = predict_with_driver(exported, X, tmp_path, STRICT + gemm_flags, cc=cc)
    assert_matches(got[0], expected, dtype, what=f"exported C with {gemm_flags}")
    assert "-DDLC_SCALAR_GEMM" in exported.header.read_text()
