"""The runtime headers (runtime/*.h) are real headers: each compiles alone under gcc and
clang with the strict flags, for float and double, with and without vectors, at every
vector width (forced wider than the ISA's too); the enum of
activations in the C agrees with dlc/ops.py's table; a program carries only the runtime it
calls, pasted without runtime includes."""
import re
import shutil
import subprocess

import pytest

from dlc.ops import ACTIVATIONS
from dlc.render import resource_dir
from dlc.runtime import header_includes, include_order, runtime_for

RUNTIME = resource_dir("runtime")
HEADERS = sorted(path.name for path in RUNTIME.glob("*.h"))
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only"]
VARIANTS = {"float": ["-DDLC_DOUBLE=0"], "double": ["-DDLC_DOUBLE=1"],
            "avx2": ["-DDLC_DOUBLE=0", "-mavx2", "-mfma"],
            "scalar": ["-DDLC_DOUBLE=0", "-DDLC_SCALAR_GEMM"],
            "avx512": ["-DDLC_DOUBLE=0", "-mavx512f", "-mavx512vl", "-mfma"],
            "w64-on-sse2": ["-DDLC_DOUBLE=1", "-DDLC_VEC_BYTES=64"],
            "w32-on-sse2": ["-DDLC_DOUBLE=0", "-DDLC_VEC_BYTES=32"]}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("header", HEADERS)
def test_header_compiles_alone(header, cc, variant):
    """A translation unit holding nothing but the header (clang warns of unused static
    functions in the main file itself, so the header is included, not compiled)."""
    if shutil.which(cc) is None:
        pytest.fail(f"{cc} is not installed")
    done = subprocess.run([cc, *STRICT, *VARIANTS[variant], "-I", str(RUNTIME), "-x", "c", "-"],
                          input=f'#include "{header}"\n', capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_header_has_a_guard_and_its_includes_exist():
    for header in HEADERS:
        text = (RUNTIME / header).read_text()
        guard = "DLC_" + re.sub(r"^DLC_", "", header[:-2].upper()) + "_H"
        assert f"#ifndef {guard}\n#define {guard}\n" in text, header
        assert text.rstrip().endswith("#endif"), header
    order = include_order(header_includes())
    for header, includes in header_includes().items():
        assert all(order.index(i) < order.index(header) for i in includes), header


def test_activation_enum_agrees_with_the_table():
    text = (RUNTIME / "activations.h").read_text()
    enum = re.search(r"enum \{(.*?)\};", text, re.S).group(1)
    pairs = re.findall(r"(DLC_ACT_\w+) = (\d+)", enum)
    assert pairs == [(act.c_name, str(code)) for code, act in enumerate(ACTIVATIONS.values())]


def test_runtime_for_carries_only_what_is_called():
    text = runtime_for("dlc_relu(z);")
    defined = set(re.findall(r"^static inline \w+ (dlc_\w+)\(", text, re.M))
    assert defined == {"dlc_relu", "dlc_bits", "dlc_from_bits", "dlc_mask_if"}
    assert '#include "' not in text
    everything = runtime_for("dlc_dense(0); dlc_adam_update(0); dlc_dropout_train(0);")
    assert "dlc_gemm_ex" in everything and "dlc_rng_bits" in everything
    assert "dlc_ewma(" not in everything      # no kernel nobody calls
