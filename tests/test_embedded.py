"""The export for microcontrollers, proved on an emulated Cortex-M4: examples/embed_cortex_m
cross-compiled against a linker script with a real part's limits (256 KiB flash, 64 KiB
RAM), run under qemu-system-arm (mps2-an386, a Cortex-M4F) with semihosting; the outputs
equal Python's, the stack painted in the program never goes past the stated figure, the
workspace guard survives and the RAM and flash the header states are what was built.
.ci/run installs gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm."""
import re
import warnings
import subprocess
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.inspect import PROBED, paint_measure
from helpers import assert_matches, random_model
from test_export import STRICT, digits_like, every_activation, predict_with_driver

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "embed_cortex_m"
QEMU = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting-config",
        "enable=on,target=native"]
ROWS = 40

MODELS = {
    "digits": lambda: digits_like(),
    "every_activation": lambda: every_activation("float32"),
    "zoo3": lambda: random_model(np.random.default_rng(3), "float32", max_width=80),
    "zoo8": lambda: random_model(np.random.default_rng(8), "float32", max_width=80),
    "zoo11": lambda: random_model(np.random.default_rng(11), "float32", max_width=80),
}


def run(command, **kwargs):
    done = subprocess.run(list(map(str, command)), capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, \
        f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def build_and_run(net, tmp_path):
    """(exported, printed rows, stack used, workspace guard line, build dir)."""
    dlc.save(net, tmp_path / "net.dlc")
    exported = dlc.export_c(net, tmp_path / "model", name="net", target="cortex-m4")
    X = (np.random.default_rng(0).normal(size=(ROWS, net.n_inputs)) * 2).astype(np.float32)
    np.savetxt(tmp_path / "rows.txt", X, fmt="%.9g")
    build = tmp_path / "build"
    run(["make", "-s", "-C", EXAMPLE, f"BUILD_DIR={build}", f"MODEL_DIR={tmp_path / 'model'}",
         f"MODEL={tmp_path / 'net.dlc'}", f"ROWS={tmp_path / 'rows.txt'}", "NAME=net",
         build / "prog.elf"])
    out = run([*QEMU, "-kernel", build / "prog.elf"], cwd=tmp_path, timeout=120).stdout
    lines = out.strip().splitlines()
    stack = int(re.fullmatch(r"stack (\d+) bytes at most", lines[-2]).group(1))
    return exported, X, np.loadtxt(lines[:-2], ndmin=2), stack, lines[-1], build


def object_sections(obj: Path) -> dict:
    out = run(["arm-none-eabi-size", "-A", obj]).stdout
    sizes = {}
    for name, size in re.findall(r"^\.(\w+)\S*\s+(\d+)", out, re.M):
        sizes[name] = sizes.get(name, 0) + int(size)
    return sizes


@pytest.mark.parametrize("model", sorted(MODELS))
def test_cortex_m4_under_qemu_equals_python(model, tmp_path):
    net = MODELS[model]()
    exported, X, printed, stack, guard, build = build_and_run(net, tmp_path)
    expected = dlc.reference(net).predict(X)
    classes, outputs = printed[:, 0].astype(int), printed[:, 1:]
    assert_matches(outputs, expected, np.float32, what=f"{model} on the Cortex-M4",
                   scale=max(1.0, np.abs(expected).max()))
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    np.testing.assert_array_equal(classes[clear], expected.argmax(axis=1)[clear])

    footprint = exported.footprint
    assert guard == f"workspace {exported.workspace_bytes} bytes, guard intact"
    assert footprint.external == ()     # libm's frames too are in the stated figure
    assert 0 < stack <= footprint.stack, (stack, footprint)
    built = object_sections(build / "net.o")
    assert built.get("data", 0) + built.get("bss", 0) + exported.workspace_bytes == footprint.ram
    assert built.get("text", 0) + built.get("rodata", 0) + built.get("data", 0) == footprint.flash
    header = exported.header.read_text()
    for what in ("flash", "ram", "stack"):
        assert f"#define NET_{what.upper()}_BYTES {getattr(footprint, what)}\n" in header


def test_cortex_m4_code_is_fpu_multiply_accumulates_without_double(tmp_path):
    net = dlc.Sequential([dlc.Input(64), dlc.Dense(32), dlc.ReLU(), dlc.Dense(10),
                          dlc.Softmax()], dtype="float32", seed=0)
    exported = dlc.export_c(net, tmp_path, name="net", target="cortex-m4")
    flags = [*STRICT[:-1], "-Wdouble-promotion", *dlc.export.TARGETS["cortex-m4"].flags]
    run(["arm-none-eabi-gcc", *flags, "-c", exported.source, "-o", tmp_path / "net.o"])
    code = run(["arm-none-eabi-objdump", "-d", tmp_path / "net.o"]).stdout
    assert re.search(r"\bvfma\.f32\b", code), "no FPU multiply-accumulate"
    assert not re.search(r"\.f64\b|__aeabi_d", code), "double arithmetic in a float model"
    footprint = exported.footprint
    assert footprint.code <= 3 * 1024 and footprint.rodata == exported.weights_bytes
    assert footprint.ram == exported.workspace_bytes and footprint.stack <= 512
    assert footprint.external == ()
    inspected = dlc.inspect(net, target="cortex-m4").footprint
    assert (inspected.flash, inspected.ram, inspected.stack) == (footprint.flash, footprint.ram,
                                                                 footprint.stack)


@pytest.mark.parametrize("target, dtype", [("generic", "float32"), ("generic", "float64"),
                                           ("cortex-m0", "float32"), ("cortex-m4", "float32"),
                                           ("cortex-m7", "float64")])
@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_plain_export_is_strict_c99_and_equals_python_on_the_host(target, dtype, cc, tmp_path):
    """The plain kernels run on the host too (the cross targets differ in the flags, and
    there sum one panel at a time)."""
    net = every_activation(dtype)
    exported = dlc.export_c(net, tmp_path / "out", name="model", target=target,
                            footprint=False)
    X = (np.random.default_rng(1).normal(size=(50, net.n_inputs)) * 2).astype(dtype)
    got = predict_with_driver(exported, X, tmp_path, STRICT, cc=cc)
    for y in got:
        assert_matches(y, dlc.reference(net).predict(X), dtype, what=target)
    assert exported.workspace_bytes == exported.inspection.arena_bytes     # no blocks


@pytest.mark.parametrize("flags", [("-O2",), ("-O3", "-march=native", "-ffast-math")])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_plain_dense_reads_every_ragged_panel_shape(dtype, flags, tmp_path):
    """Widths 1..3 and 4k + 1..3 around the vector path's groups of 8 panels (32, 33, 35,
    38, 70 columns) and odd and even depths (fast-math on AVX sums rows k, k + 1 apart):
    each layer's last panel holds only the columns left (float64 takes the scalar loops),
    and a softmax of 35 classes ends 4 values at a time with 3 left."""
    widths = [33, 70, 5, 38, 1, 2, 3, 32, 35]
    layers = [layer for w in widths[:-1] for layer in (dlc.Dense(w), dlc.Tanh())]
    net = dlc.Sequential([dlc.Input(7), *layers, dlc.Dense(widths[-1]), dlc.Softmax()],
                         dtype=dtype, seed=4)
    exported = dlc.export_c(net, tmp_path / "out", name="model", target="generic",
                            footprint=False)
    params = net.get_params().values()      # each aligned to 16 values, none padded more
    assert exported.weights_bytes <= sum(p.nbytes + 16 * p.itemsize for p in params)
    X = (np.random.default_rng(2).normal(size=(30, 7)) * 2).astype(dtype)
    for y in predict_with_driver(exported, X, tmp_path, [*STRICT, *flags]):
        assert_matches(y, dlc.reference(net).predict(X), dtype, what=" ".join(flags))


def test_export_carries_only_the_kernels_its_model_calls(tmp_path):
    relu = dlc.Sequential([dlc.Input(8), dlc.Dense(4), dlc.ReLU(), dlc.Dense(3)], seed=0)
    source = dlc.export_c(relu, tmp_path, name="m", target="generic").source.read_text()
    defined = set(re.findall(r"^static inline (?:__attribute__\(\(\w+\)\) )?\w+ \**(dlc_\w+)\(",
                             source, re.M))
    assert defined == {"dlc_bits", "dlc_from_bits", "dlc_mask_if", "dlc_relu",
                       "dlc_plain_panels", "dlc_plain_dense", "dlc_plain_relu"}
    assert not re.search(r"dlc_(elu|silu|sigmoid1|activate1|softmax|gemm)", source)
    classifier = dlc.Sequential([dlc.Input(8), dlc.Dense(3), dlc.Softmax()], seed=0)
    source = dlc.export_c(classifier, tmp_path / "softmax", name="m",
                          target="generic").source.read_text()
    defined = set(re.findall(r"^static .*?\b(dlc_\w+)\(", source, re.M))
    assert {"dlc_plain_softmax", "dlc_plain_exp4"} <= defined
    assert not defined & {"dlc_softmax_by_row", "dlc_softmax_undefined", "dlc_turn"}


def test_every_activation_has_a_plain_kernel():
    text = (Path(dlc.render.resource_dir("runtime")) / "portable.h").read_text()
    for name in dlc.ops.ACTIVATIONS:
        if name not in ("none", "softmax"):
            assert f"static inline void dlc_plain_{name}(" in text, name
    assert f"DLC_PLAIN_PANEL != {dlc.targets.embedded.PLAIN_PANEL}\n" in text


def test_unknown_target_is_a_clear_error(tmp_path):
    net = every_activation("float32")
    with pytest.raises(ValueError, match="unknown export target 'avr'; known targets: host"):
        dlc.export_c(net, tmp_path, target="avr")
    with pytest.raises(TypeError, match="target must be a string"):
        dlc.inspect(net, target=4)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_generic_stack_on_the_host_bounds_a_painted_run(dtype, tmp_path):
    """The stated stack of a host build counts libm (measured on a painted stack) and the
    red zone: a whole prediction run on a painted stack takes no more."""
    net = every_activation(dtype)
    exported = dlc.export_c(net, tmp_path, name="model", target="generic")
    footprint = exported.footprint
    assert footprint.external == ()
    assert footprint.chain[-1] in PROBED      # the deepest call is into libm
    ctype = "float" if dtype == "float32" else "double"
    prelude = (f'#include "model.h"\nstatic {ctype} x[MODEL_N_INPUTS], y[MODEL_N_OUTPUTS];\n'
               f"static double workspace[MODEL_WORKSPACE_BYTES / sizeof(double) + 1];\n"
               f"static inline __attribute__((always_inline)) double predict(double v)\n"
               f"{{\n    for (int i = 0; i < MODEL_N_INPUTS; i++) {{\n"
               f"        x[i] = ({ctype})(v * (i % 3 - 1));\n    }}\n"
               f"    return model_predict(x, y, 1, workspace) + y[0];\n}}\n")
    command = (*dlc.build.compiler_command(), *dlc.export.TARGETS["generic"].flags,
               f"-I{tmp_path}")
    used = paint_measure(command, [("predict", "double")], prelude,
                         [exported.source])["predict"]
    assert 0 < used <= footprint.stack, (used, footprint)


def test_a_model_too_big_for_the_part_warns_or_raises_with_the_figures(tmp_path):
    big = dlc.Sequential([dlc.Input(64), dlc.Dense(128), dlc.ReLU(), dlc.Dense(128), dlc.ReLU(),
                          dlc.Dense(10), dlc.Softmax()], dtype="float32", seed=0)
    with pytest.warns(dlc.export.PartTooSmall) as caught:
        exported = dlc.export_c(big, tmp_path / "warn", name="big", target="cortex-m0")
    footprint = exported.footprint
    assert footprint.flash > 32 * 1024
    message = str(caught[0].message)
    assert message.startswith("the model does not fit the cortex-m0 part: ")
    assert (f"flash {footprint.flash} bytes ({footprint.text} code, {footprint.rodata} "
            f"constants, {footprint.data} data) > 32768") in message
    assert "RAM" not in message      # 2 KiB of RAM and stack fit in 8
    with pytest.raises(dlc.export.PartTooSmallError, match=f"flash {footprint.flash} bytes"):
        dlc.export_c(big, tmp_path / "strict", name="big", target="cortex-m0", strict=True)
    dlc.export_c(big, tmp_path / "fits", name="big", target="cortex-m0",
                 flash_bytes=footprint.flash, ram_bytes=footprint.ram + footprint.stack,
                 strict=True)


def test_part_limits_are_checked_on_ram_with_the_stack(tmp_path):
    net = dlc.Sequential([dlc.Input(64), dlc.Dense(32), dlc.ReLU(), dlc.Dense(10),
                          dlc.Softmax()], dtype="float32", seed=0)
    with pytest.raises(dlc.export.PartTooSmallError) as raised:
        exported = dlc.export_c(net, tmp_path, name="net", target="cortex-m4", ram_bytes=160,
                                strict=True)
    footprint = dlc.inspect(net, target="cortex-m4").footprint
    need = footprint.ram + footprint.stack
    assert need > 160 and footprint.workspace < 160
    assert (f"RAM {need} bytes ({footprint.workspace} workspace, 0 data and bss, "
            f"{footprint.stack} stack) > 160") in str(raised.value)
    assert "flash" not in str(raised.value)
    with pytest.warns(dlc.export.PartTooSmall, match=r"generic part: RAM \d+ bytes .*\) > 100$"):
        dlc.export_c(net, tmp_path, name="net", target="generic", ram_bytes=100)
    with pytest.raises(ValueError, match="ram_bytes must be"):
        dlc.export_c(net, tmp_path, name="net", target="cortex-m4", ram_bytes=0)
    with pytest.raises(ValueError, match="need footprint=True"):
        dlc.export_c(net, tmp_path, name="net", target="host", flash_bytes=10,
                     footprint=False)
    with pytest.raises(TypeError, match="strict must be True or False"):
        dlc.export_c(net, tmp_path, name="net", target="host", strict=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exported = dlc.export_c(net, tmp_path, name="net", target="cortex-m4")
    assert exported.footprint.flash <= 256 * 1024
