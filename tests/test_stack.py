"""No kernel keeps large arrays on the stack: the matrix multiply packs its blocks in the
declared workspace.  predict, fit and the exported program run on small thread stacks,
every function of the exported code has a small frame, and the code stays inside the
workspace it declares."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dlc
from helpers import assert_matches
from test_export import MODELS, STRICT, inputs_for, mnist_mlp, predict_with_driver

HERE = Path(__file__).resolve().parent
STACK_KIB = 64          # a Python thread runs predict and fit in this much
FRAME_BYTES = 6 * 1024  # the largest frame of any exported function
CHAIN_BYTES = 8 * 1024  # the deepest call chain from the exported entry point
GUARD_BYTES = 4096
CTYPES = {"float32": "float", "float64": "double"}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_predict_and_fit_run_on_a_64_KiB_thread_stack(model):
    """In a child process, so that an overflow fails this test rather than pytest."""
    done = subprocess.run([sys.executable, str(HERE / "small_stack.py"), str(STACK_KIB), model],
                          cwd=HERE, capture_output=True, text=True)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("cc, flags", [("gcc", ["-O2"]), ("clang", ["-O3", "-march=native"])])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_exported_program_runs_in_a_64_KiB_pthread(model, dtype, cc, flags, tmp_path):
    """The driver's own workspace is malloc'ed at exactly the declared size (the sanitizer
    tests of test_export.py catch an access past it)."""
    net = MODELS[model](dtype)
    exported = dlc.export_c(net, tmp_path / "out", name="model")
    X = inputs_for(net, n=300)
    expected = dlc.reference(net).predict(X)
    small_stack = STRICT + flags + [f"-DDRIVER_STACK_BYTES={STACK_KIB * 1024}", "-pthread"]
    got = predict_with_driver(exported, X, tmp_path, small_stack, cc=cc)
    for y, how in zip(got, ("internal workspace", "own workspace", "row by row")):
        assert_matches(y, expected, dtype, what=f"{model} on {STACK_KIB} KiB, {how}",
                       scale=max(1.0, np.abs(expected).max()))


def call_graph(ci_text: str) -> tuple:
    """({function: frame bytes}, {function: callees}) from gcc's -fcallgraph-info=su."""
    frames = {title: int(size) for title, size in re.findall(
        r'node: \{ title: "([^"]+)" label: "[^"]*\\n(\d+) bytes', ci_text)}
    calls = {}
    for source, target in re.findall(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"',
                                     ci_text):
        calls.setdefault(source, set()).add(target)
    return frames, calls


def deepest(function: str, frames: dict, calls: dict) -> int:
    """Stack bytes of the deepest chain of calls from ``function`` (no recursion here);
    library functions (libm, memcpy) count nothing."""
    return frames.get(function, 0) + max(
        (deepest(callee, frames, calls) for callee in calls.get(function, ())), default=0)


def stack_usage(exported, flags, tmp_path) -> tuple:
    """(every function's frame, the deepest chain from model_predict) compiled by gcc."""
    obj = tmp_path / "model.o"
    subprocess.run(["gcc", *STRICT, *flags, "-fstack-usage", "-fcallgraph-info=su", "-c",
                    str(exported.source), "-o", str(obj)], cwd=tmp_path, check=True)
    usage = (tmp_path / "model.su").read_text().splitlines()
    frames = {line.split("\t")[0].rsplit(":", 1)[-1]: (int(line.split("\t")[1]),
                                                       line.split("\t")[2]) for line in usage}
    graph_frames, calls = call_graph((tmp_path / "model.ci").read_text())
    return frames, deepest("model_predict", graph_frames, calls)


def small_net():
    return dlc.Sequential([dlc.Input(64), dlc.Dense(32), dlc.ReLU(), dlc.Dense(10),
                           dlc.Softmax()], dtype="float32", seed=0)


NETS = {"64-32-10": small_net, "784-256-256-10": mnist_mlp,
        **{f"{name} {dtype}": (lambda make=make, dtype=dtype: make(dtype))
           for name, make in MODELS.items() for dtype in ("float32", "float64")}}
PORTABLE, NATIVE = ["-O2"], ["-O3", "-march=native"]


@pytest.mark.parametrize("net, flags", [(net, NATIVE) for net in sorted(NETS)]
                         + [("64-32-10", PORTABLE), ("784-256-256-10", PORTABLE)])
def test_every_exported_frame_is_a_few_KiB(net, flags, tmp_path):
    exported = dlc.export_c(NETS[net](), tmp_path, name="model")
    frames, chain = stack_usage(exported, flags, tmp_path)
    assert "model_predict" in frames
    for function, (size, kind) in frames.items():
        assert size <= FRAME_BYTES and kind in ("static", "dynamic,bounded"), \
            f"{function}: {size} bytes ({kind})"
    assert chain <= CHAIN_BYTES, f"model_predict needs {chain} bytes of stack"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_library_stays_inside_its_declared_workspace(model, dtype):
    """dlc_predict with a workspace of exactly workspace_bytes followed by painted guard
    bytes: for any thread count the guard stays untouched and the results are the same."""
    net = MODELS[model](dtype)
    compiled = dlc.compile(net)
    X = inputs_for(net, n=300)
    expected = compiled.predict(X)
    ffi, lib, array = compiled.ffi, compiled.lib, f"{CTYPES[dtype]}[]"
    for threads in (1, 2, 3):
        compiled.threads = threads
        size = compiled.workspace_bytes
        memory = np.full(size + GUARD_BYTES, 0xA5, np.uint8)
        y = np.empty_like(expected)
        status = lib.dlc_predict(ffi.from_buffer(array, compiled.params),
                                 ffi.from_buffer(array, X), ffi.from_buffer(array, y), len(X),
                                 ffi.from_buffer(memory), threads)
        assert status == lib.DLC_OK
        np.testing.assert_array_equal(y, expected)
        assert (memory[size:] == 0xA5).all(), f"{model}, {threads} threads: past the workspace"
