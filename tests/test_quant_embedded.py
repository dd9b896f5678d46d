"""int8 on the microcontroller targets: a quantized model exported for a Cortex-M
(plain int8 kernels, weights const int8 in flash, SMLAD dual multiply-accumulates on the
M4 and M7) runs under qemu-system-arm (mps2-an386, a Cortex-M4F; the Cortex-M0 build runs
there too, Armv6-M being a subset) and prints, row by row, exactly the interpreter's
outputs; the generic target equals it on the host under gcc and clang."""
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import dlc
from test_embedded import EXAMPLE, QEMU, object_sections, run
from test_export import STRICT, digits_like, predict_with_driver
from test_quant import relu_net

ROWS_MAIN = Path(__file__).resolve().parent / "c" / "cortex_m_rows.c"
ROWS = 30
# The mps2 boards clock SysTick at 25 MHz; -icount shift=0 runs 1 instruction per ns.
INSTRUCTIONS_PER_TICK = 40


def quantized(model: str):
    """(float net, qnet) of one of the models under test, calibrated on 300 rows."""
    rng = np.random.default_rng(7)
    if model == "digits":
        net = digits_like()
        return net, dlc.quantize(net, rng.normal(size=(300, 64)) * 2, output="int8")
    seed = int(model[-1])
    net = relu_net(int(rng.integers(3, 40)), [int(w) for w in rng.integers(1, 70, size=seed)],
                   int(rng.integers(2, 12)), seed)
    return net, dlc.quantize(net, rng.normal(size=(300, net.n_inputs)) * 1.5,
                             activations="int16" if model.endswith("3") else "int8",
                             per_channel=seed % 2 == 0)


def rows_for(qnet, n=ROWS, seed=0):
    return (np.random.default_rng(seed).normal(size=(n, qnet.n_inputs)) * 2).astype(np.float32)


def run_on_cortex_m(exported, X, directory: Path, repeats: int = 1, extra_flags=()):
    """(the outputs printed for rows X, instructions per prediction): the export built with
    its target's flags (and ``extra_flags``) around tests/c/cortex_m_rows.c, run under QEMU
    counting instructions."""
    flags = [*dlc.export.TARGETS[exported.target].flags, *extra_flags]
    cpu = [f for f in flags if f.startswith("-m")]
    name = exported.name
    np.savetxt(directory / "rows.txt", X, fmt="%.9g")
    model_o, main_o, start_o = (directory / f for f in ("model.o", "main.o", "startup.o"))
    run(["arm-none-eabi-gcc", *STRICT[:-1], *flags, "-c", exported.source, "-o", model_o])
    integer = [] if exported.output_dtype is None else ["-DINTEGER_OUTPUT"]
    run(["arm-none-eabi-gcc", *cpu, "-std=gnu99", "-O2", f"-DMODEL={name}",
         f"-DMODEL_UPPER={name.upper()}", f'-DMODEL_HEADER="{name}.h"', '-DROWS_FILE="rows.txt"',
         f"-DREPEATS={repeats}", *integer, "-I", exported.header.parent, "-c", ROWS_MAIN,
         "-o", main_o])
    run(["arm-none-eabi-gcc", *cpu, "-std=gnu99", "-O2", "-c", EXAMPLE / "startup.c",
         "-o", start_o])
    elf = directory / "prog.elf"
    run(["arm-none-eabi-gcc", *cpu, "-nostartfiles", "--specs=rdimon.specs", "-T",
         EXAMPLE / "cortex_m4.ld", "-Wl,--gc-sections", start_o, main_o, model_o, "-lm",
         "-o", elf])
    lines = run([*QEMU, "-icount", "shift=0", "-kernel", elf], cwd=directory,
                timeout=300).stdout.strip().splitlines()
    ticks, repeats = map(int, re.fullmatch(r"systick (\d+) repeats (\d+)", lines[-1]).groups())
    printed = np.loadtxt(lines[:-1], ndmin=2, dtype=np.int64 if integer else np.float32)
    return printed, ticks * INSTRUCTIONS_PER_TICK / repeats


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0"])
@pytest.mark.parametrize("model", ["digits", "relu2", "relu3"])
def test_int8_on_cortex_m_under_qemu_equals_interpreter_bit_for_bit(model, target, tmp_path):
    _, qnet = quantized(model)
    exported = dlc.export_c(qnet, tmp_path / "model", name="net", target=target)
    X = rows_for(qnet)
    printed, _ = run_on_cortex_m(exported, X, tmp_path)
    expected = qnet.predict(X)
    assert printed.shape == expected.shape
    if exported.output_dtype is not None:
        np.testing.assert_array_equal(printed, expected.astype(np.int64))
    else:       # %.9g of a float32 reads back as the same float
        np.testing.assert_array_equal(printed.view(np.uint32), expected.view(np.uint32))
    source = exported.source.read_text()
    assert "dlc_plain_qdense_" in source and "dlc_qpacked_index" not in source


@pytest.mark.parametrize("target, dsp", [("cortex-m4", True), ("cortex-m7", True),
                                         ("cortex-m0", False)])
def test_cortex_m_int8_kernel_and_flash(target, dsp, tmp_path):
    """On the DSP cores the inner loop is SMLAD; the int8 weights are const (.rodata, in
    flash), each matrix a quarter of its float32 bytes, and the footprint counts them."""
    net, qnet = quantized("digits")
    exported = dlc.export_c(qnet, tmp_path / "q", name="net", target=target)
    obj = tmp_path / "net.o"
    run(["arm-none-eabi-gcc", *STRICT[:-1], *dlc.export.TARGETS[target].flags, "-c",
         exported.source, "-o", obj])
    code = run(["arm-none-eabi-objdump", "-d", obj]).stdout
    assert bool(re.search(r"\bsmlad\b", code)) == dsp
    assert bool(re.search(r"\bsxtab16\b", code)) == dsp
    footprint = exported.footprint
    assert footprint.rodata == object_sections(obj)["rodata"]
    # the weights, and a few constants of the code (the Cortex-M0 has 8 bytes)
    assert exported.weights_bytes <= footprint.rodata <= exported.weights_bytes + 32
    matrices = [p for p in qnet.graph.params.values() if p.type.dtype == "i8"]
    float_matrices = [p for p in qnet.float_graph.params.values() if p.value.ndim == 2]
    assert 4 * sum(p.value.nbytes for p in matrices) == sum(p.value.nbytes
                                                            for p in float_matrices)
    floats = dlc.export_c(net, tmp_path / "f", name="net", target=target).footprint
    assert footprint.rodata * 3 < floats.rodata, (footprint, floats)


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("model", ["digits", "relu2", "relu3"])
def test_generic_int8_export_equals_interpreter_on_the_host(model, cc, tmp_path):
    _, qnet = quantized(model)
    exported = dlc.export_c(qnet, tmp_path / "out", name="model", target="generic",
                            footprint=False)
    X = rows_for(qnet, 200)
    for y in predict_with_driver(exported, X, tmp_path, STRICT, cc=cc):
        np.testing.assert_array_equal(y, qnet.predict(X))


def qout_records(n=30000, seed=0):
    """(sum, bias, multiplier, shift, y_zero, lo, hi) records: a third whose sum plus bias
    lands inside the output range (every shift that allows it), a third exactly halfway
    between two outputs (the rounding rule), a third anywhere in int32 (saturating)."""
    rng = np.random.default_rng(seed)
    k = n // 3
    multipliers = rng.integers(2 ** 30, 2 ** 31, n)
    shifts = np.concatenate([rng.integers(-30, 23, k), rng.integers(1, 23, k),
                             rng.integers(-30, 32, n - 2 * k)])
    multipliers[k:2 * k] = 2 ** 30      # acc 2^(1 + shift) (j + 1/2) -> j + 1/2, a tie
    acc = np.concatenate([
        np.rint(rng.uniform(-300, 300, k) * 2.0 ** (31 + shifts[:k]) / multipliers[:k]),
        (2 * rng.integers(-150, 150, k) + 1) * 2.0 ** shifts[k:2 * k],
        rng.uniform(-2 ** 32, 2 ** 32, n - 2 * k)])
    info = np.iinfo(np.int32)
    acc = np.clip(acc, info.min, info.max).astype(np.int64)
    biases = np.clip(rng.integers(-2 ** 31, 2 ** 31, n), info.min, info.max)
    biases[:2 * k] = rng.integers(-1000, 1000, 2 * k)
    sums = np.clip(acc - biases, info.min, info.max)
    zeros = rng.integers(-128, 128, n)
    lo = np.where(rng.random(n) < 0.3, zeros, -128)
    records = np.stack([sums, biases, multipliers, shifts, zeros, lo, np.full(n, 127)], 1)
    return records.astype(np.int32)


def qout_expected(records):
    s, b, m, shift, zero, lo, hi = (records[:, i].astype(np.int64) for i in range(7))
    return np.clip(dlc.ops.requantize(s + b, m, shift) + zero, lo, hi)


def test_plain_requantization_equals_the_interpreter(tmp_path):
    """dlc_plain_qout's 32-bit path (QADD and the high word of one multiply on the DSP
    cores) equals dlc/ops.py's requantization on every shift, on the host (gcc) and on the
    emulated Cortex-M4."""
    records = qout_records()
    expected = qout_expected(records)
    inside = (expected > records[:, 5]) & (expected < 127)
    assert inside.mean() > 0.35        # these test the rounding, not the clamp
    (tmp_path / "qout.bin").write_bytes(records.tobytes())
    runtime = Path(dlc.render.resource_dir("runtime"))
    host = tmp_path / "qout"
    run(["gcc", *STRICT, "-O2", "-I", runtime, ROWS_MAIN.with_name("plain_qout.c"), "-o", host])
    run([host], cwd=tmp_path)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "qout.out", np.int32), expected)
    (tmp_path / "qout.out").unlink()
    cpu = [f for f in dlc.export.TARGETS["cortex-m4"].flags if f.startswith("-m")]
    elf = tmp_path / "qout.elf"
    run(["arm-none-eabi-gcc", "-std=gnu99", "-Wall", "-Wextra", "-Werror", *cpu, "-O2", "-I",
         runtime, "-nostartfiles",
         "--specs=rdimon.specs", "-T", EXAMPLE / "cortex_m4.ld", EXAMPLE / "startup.c",
         ROWS_MAIN.with_name("plain_qout.c"), "-lm", "-o", elf])
    run([*QEMU, "-kernel", elf], cwd=tmp_path, timeout=300)
    np.testing.assert_array_equal(np.fromfile(tmp_path / "qout.out", np.int32), expected)
