"""A quantized model's int8 output from compiled C (dlc.compile and export_c): the same
integers as the interpreter, with the scale and zero point on the Python object and in
the export's header; and the quantized workspace, each value sized by its dtype's bytes:
the stated workspace is the peak of the live values' bytes, smaller than floats'."""
import pickle
import re

import numpy as np
import pytest

import dlc
from dlc.layout import QDENSE_ROWS_BYTES
from dlc.passes.plan_memory import ALIGN
from test_export import STRICT, digits_like, predict_with_driver
from test_quant import relu_net


def int8_model(seed: int = 4):
    rng = np.random.default_rng(seed)
    net = relu_net(11, [30, 17], 6, seed)
    return net, dlc.quantize(net, rng.normal(size=(300, 11)), output="int8")


def test_compiled_int8_output_equals_interpreter_bit_for_bit():
    _, qnet = int8_model()
    lib = dlc.compile(qnet)
    scale, zero = qnet.output_quantization
    place = qnet.scale_of(qnet.graph.outputs[0])
    assert (lib.output_scale, lib.output_zero_point) == (place.scale, place.zero_point)
    assert (scale, zero) == (place.scale, place.zero_point)
    rng = np.random.default_rng(0)
    for batch in (1, 3, 257, 1000):
        X = (rng.normal(size=(batch, 11)) * 2).astype(np.float32)
        y = lib.predict(X)
        assert y.dtype == np.int8 and y.shape == (batch, 6)
        np.testing.assert_array_equal(y, qnet.predict(X), err_msg=f"batch {batch}")
    again = pickle.loads(pickle.dumps(lib))
    assert (again.output_scale, again.output_zero_point) == (scale, zero)
    np.testing.assert_array_equal(again.predict(X), y)


def test_float_output_states_no_quantization(tmp_path):
    net = relu_net(5, [8], 3, seed=0)
    qnet = dlc.quantize(net, np.random.default_rng(1).normal(size=(100, 5)))
    assert qnet.output_quantization is None
    lib = dlc.compile(qnet)
    assert lib.output_scale is None and lib.predict(np.zeros((2, 5))).dtype == np.float32
    exported = dlc.export_c(qnet, tmp_path, name="m")
    assert exported.output_scale is None
    assert "OUTPUT_SCALE" not in exported.header.read_text()


@pytest.mark.parametrize("target", ["host", "generic"])
@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_exported_int8_output_equals_interpreter_and_header_states_scale(target, cc, tmp_path):
    _, qnet = int8_model(5)
    exported = dlc.export_c(qnet, tmp_path / "out", name="model", target=target,
                            footprint=False)
    scale, zero = qnet.output_quantization
    assert (exported.output_scale, exported.output_zero_point) == (scale, zero)
    header = exported.header.read_text()
    assert "int model_predict(const float *x, int8_t *y, size_t batch, void *workspace);" \
        in header
    stated = re.search(r"#define MODEL_OUTPUT_SCALE (\S+)\n#define MODEL_OUTPUT_ZERO_POINT "
                       r"\((-?\d+)\)\n", header)
    assert float(stated.group(1)) == scale and int(stated.group(2)) == zero
    X = (np.random.default_rng(2).normal(size=(150, 11)) * 2).astype(np.float32)
    for y in predict_with_driver(exported, X, tmp_path, STRICT, cc=cc):
        np.testing.assert_array_equal(y, qnet.predict(X))


def test_int8_output_refuses_dispatch(tmp_path):
    _, qnet = int8_model()
    with pytest.raises(ValueError, match="isa='dispatch' exports float outputs only"):
        dlc.export_c(qnet, tmp_path, isa="dispatch")


# ---------------------------------------------------------------- the quantized workspace

def peak_live_bytes(graph, rows: int, sizes=None) -> int:
    """The most bytes the arena's values (every node's result but the output, which is
    written to y) hold at once, each value ``rows`` rows of its dtype's bytes rounded up to
    ALIGN values of the graph's float dtype: the least any plan can state."""
    unit = np.dtype(graph.inputs[next(iter(graph.inputs))].np_dtype).itemsize
    align = ALIGN * unit
    last = {ref: i for i, node in enumerate(graph.nodes) for ref in node.inputs}
    values = [(i, last.get(n.out, i), n.type) for i, n in enumerate(graph.nodes)
              if n.out not in graph.outputs]

    def size(t):
        itemsize = unit if sizes == "float" else t.np_dtype.itemsize
        return -(-t.row_size * rows * itemsize // align) * align
    return max(sum(size(t) for start, end, t in values if start <= i <= end)
               for i in range(len(graph.nodes)))


@pytest.mark.parametrize("activations", ["int8", "int16"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_quantized_workspace_is_the_peak_of_dtype_sized_values(target, dtype, activations,
                                                               tmp_path):
    net = digits_like(dtype)
    qnet = dlc.quantize(net, np.random.default_rng(3).normal(size=(300, 64)),
                        activations=activations, output="int8")
    rows = dlc.export.TARGETS[target].tile_rows
    exported = dlc.export_c(qnet, tmp_path / "out", name="model", target=target,
                            footprint=False)
    expected = peak_live_bytes(qnet.graph, rows)
    # then, on the host, the rows the AVX2 int8 kernel widens (runtime/quant.h)
    widened = QDENSE_ROWS_BYTES if target == "host" and activations == "int8" else 0
    assert exported.workspace_bytes == expected + widened
    assert expected < peak_live_bytes(qnet.graph, rows, sizes="float")
    if target == "host":        # and the C still equals the interpreter
        X = np.random.default_rng(4).normal(size=(70, 64)).astype(dtype)
        for y in predict_with_driver(exported, X, tmp_path, STRICT):
            np.testing.assert_array_equal(y, qnet.predict(X))
