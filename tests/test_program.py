"""The program between the IR and the C text: typed calls on named buffers, each inside
its region, and the C that declares exactly those buffers."""
import dataclasses
import re

import numpy as np
import pytest

import dlc
from dlc.lower import lower
from dlc.passes import INFERENCE_PIPELINE, run_pipeline
from dlc.program import Buffer, Call, Scalar, inference_program, training_program
from dlc.render import safe_comment
from dlc.targets.export import generate_export
from dlc.targets.library import generate_module
from dlc.targets.trainer import generate_train_module
from dlc.train import training_graph
from helpers import random_model

HOSTILE = 'x */ system("rm -rf ~"); /*\n#include <evil.h>\n??/ \\'
OPTIMIZERS = [dlc.SGD(), dlc.Momentum(), dlc.RMSProp(), dlc.Adam()]


def zoo_net(dtype="float32", name="dense"):
    return dlc.Sequential([dlc.Input(5), dlc.Normalize(np.zeros(5), np.ones(5)),
                           dlc.Dense(7, name=name), dlc.BatchNorm(), dlc.Tanh(),
                           dlc.Dropout(0.7), dlc.Dense(4), dlc.LeakyReLU(0.1), dlc.Dense(3),
                           dlc.Softmax()], dtype=dtype, seed=3)


def inference(net, tile_rows=64):
    return inference_program(run_pipeline(lower(net), INFERENCE_PIPELINE), tile_rows)


def training(net, optimizer):
    return training_program(training_graph(net, "cross_entropy", optimizer, l2=0.1))


def programs():
    rng = np.random.default_rng(0)
    yield "zoo", inference(zoo_net())
    for i in range(4):
        yield f"random{i}", inference(random_model(rng, max_width=40), tile_rows=8)
    for optimizer in OPTIMIZERS:
        yield type(optimizer).__name__, training(zoo_net("float64"), optimizer)


PROGRAMS = list(programs())


@pytest.mark.parametrize("label, program", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_every_buffer_lies_inside_its_region(label, program):
    assert program.buffers
    for buffer in program.buffers:
        assert buffer.region in program.regions, buffer
        assert 0 <= buffer.offset
        assert buffer.offset + buffer.elements <= program.regions[buffer.region], buffer
        assert buffer.elements >= buffer.size


@pytest.mark.parametrize("label, program", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_a_name_is_one_buffer_and_one_value(label, program):
    by_name, by_ref = {}, {}
    for call in program.calls:
        for arg in call.args.values():
            assert re.fullmatch(r"[a-z][a-z0-9_]*", arg.name, re.I), arg.name
            assert by_name.setdefault(arg.name, arg) == arg
            assert by_ref.setdefault(arg.ref, arg.name) == arg.name
    assert len(by_name) == len(by_ref)


@pytest.mark.parametrize("label, program", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_every_operand_of_an_op_is_an_argument_of_its_call(label, program):
    for call in program.calls:
        assert "y" in call
        if call.kernel in ("adam_update", "momentum_update", "rmsprop_update"):
            assert call["W"] == call["y"] and call["W"].region == "S"
        if call.kernel == "dense":
            width = 64 // program.itemsize           # a cache line
            assert call["W"].panel == (width if program.kind == "inference" else 0)


def test_training_scalars_are_passed_by_value():
    program = training(zoo_net(), dlc.Adam())
    scalars = {arg.ref: arg.name for call in program.calls for arg in call.args.values()
               if isinstance(arg, Scalar)}
    assert scalars == {"%m": "m", "%lr": "lr", "%step": "step", "%seed": "seed"}
    _, source, _ = generate_train_module(training_graph(zoo_net(), "cross_entropy",
                                                        dlc.Adam(), l2=0.1))
    body = source[source.index("static void train_step"):]
    assert "(&" not in body and "&m" not in body and ")[0]" not in body
    assert re.search(r"dlc_adam_update\(\d+, lr, step,", body)
    assert re.search(r"dlc_rng_key\(\(uint64_t\)seed, \(uint64_t\)step,", body)


def declarations(source: str) -> dict:
    """name -> (region, per row, offset) of every buffer the C declares."""
    found = re.findall(r"dlc_real \*const (\w+) = ([PSAU]) \+ (rows \* )?(\d+);", source)
    names = [f[0] for f in found]
    assert len(names) == len(set(names)), "a buffer declared twice"
    return {name: (region, bool(rows), int(offset)) for name, region, rows, offset in found}


@pytest.mark.parametrize("kind", ["inference", "train"])
def test_the_c_declares_exactly_the_program_buffers(kind):
    net = zoo_net(name=HOSTILE)
    if kind == "inference":
        _, source, program = generate_module(run_pipeline(lower(net), INFERENCE_PIPELINE))
    else:
        _, source, program = generate_train_module(
            training_graph(net, "cross_entropy", dlc.Adam(), l2=0.1))
    expected = {b.name: (b.region, b.per_row, b.offset) for b in program.declared}
    assert declarations(source) == expected
    for b in program.declared:      # each named after its IR value, with its type
        comment = re.escape(f"/* {safe_comment(b.ref)} {b.type}")
        assert re.search(rf"\b{b.name} = [^\n]*{comment}",
                         source), b


def test_export_states_the_workspace_of_its_program(tmp_path):
    graph = run_pipeline(lower(zoo_net()), INFERENCE_PIPELINE)
    program = inference_program(graph, 16)
    block = np.zeros(program.params.size, np.float32)
    header, source, exported = generate_export(graph, "zoo", block, [], tile_rows=16)
    assert exported == program
    assert f"#define ZOO_WORKSPACE_BYTES {program.workspace_bytes}\n" in header
    assert program.workspace_bytes == (program.arena_elements + program.blocks.elements) * 4
    assert f"static dlc_real internal[{program.workspace_elements}];" in source


def test_library_workspace_is_the_program_workspace():
    net = zoo_net()
    model = dlc.compile(net, tile_rows=32)
    program = inference(net, tile_rows=32)
    assert model.workspace_bytes == program.workspace_bytes
    X = np.random.default_rng(1).normal(size=(70, 5)).astype(np.float32)
    np.testing.assert_allclose(model.predict(X), dlc.reference(net).predict(X),
                               rtol=1e-5, atol=1e-6)


def test_program_is_frozen():
    program = inference(zoo_net())
    with pytest.raises(dataclasses.FrozenInstanceError):
        program.calls = ()
    with pytest.raises(TypeError):
        program.calls[0].args["y"] = None
    assert isinstance(program.calls[0]["y"], Buffer)


def test_an_operand_may_not_shadow_a_call_attribute():
    x = inference(zoo_net()).calls[0]["y"]
    with pytest.raises(ValueError, match="named like Call attributes: \\['layer'\\]"):
        Call("copy", "copy", "output", "copy", {"layer": x, "y": x})
