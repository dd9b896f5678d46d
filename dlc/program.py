"""The program: an IR graph lowered to an ordered list of kernel calls with typed arguments.

A ``Program`` says which kernel runs, on which buffers (each named, typed, and placed in
one memory region at a planned offset), with which scalars and constants; templates
render it (see dlc/targets/), Python never writes C text.  C names are generated
(``v9`` for %9, ``p3_W`` for the fourth parameter): user strings reach C only as the
sanitised comments the templates put beside them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional, Union

import numpy as np

from .ir import BATCH, DTYPES, Graph, Node, TensorType, format_node
from .layout import (PACKINGS, GemmBlocks, ParamLayout, gemm_blocks, inference_layout,
                     panels_size, param_layout, qdense_blocks)
from .ops import OPS
from .passes.plan_memory import MemoryPlan, buffer_elements, plan_memory
from .render import CTYPES, ir_lines, safe_comment

TILE_ROWS = 64
# Libraries loaded into Python run 256-row tiles: each weight matrix is packed once per
# 256 rows instead of per 64 (the workspace grows, which matters in firmware, not here).
LIBRARY_TILE_ROWS = 256

# The memory regions a buffer lives in, as the entry functions name them.
REGIONS = {
    "P": "the parameters (inference)",
    "S": "the state block: parameters, optimizer state, running statistics (training)",
    "A": "the arena (per tile in inference, per batch row in training)",
    "U": "the fixed scratch: unbatched values such as gradients (training)",
    "x": "the input rows",
    "t": "the target rows (training)",
    "y": "the output rows (inference)",
    "Q": "the integer constants of a quantized model, static arrays of their own type",
}
ROW_REGIONS = frozenset("xty")          # function arguments: no declaration of their own
UNDECLARED = ROW_REGIONS | {"Q"}        # the Q arrays are declared at file scope

# The entry points of a host inference library and of a host trainer, by role: the names
# the entry templates define and the Python that loads the module calls.
ENTRIES = {
    "inference": {"n_inputs": "dlc_n_inputs", "n_outputs": "dlc_n_outputs",
                  "n_params": "dlc_n_params", "workspace_bytes": "dlc_workspace_bytes",
                  "predict": "dlc_predict"},
    "train": {"n_inputs": "dlc_n_inputs", "n_outputs": "dlc_n_outputs",
              "state_elements": "dlc_state_elements", "work_elements": "dlc_work_elements",
              "set_threads": "dlc_set_threads", "epoch": "dlc_train_epoch"},
}


@dataclass(frozen=True)
class Buffer:
    """A named array: ``offset`` elements into ``region`` (times the batch rows when
    ``per_row``), ``elements`` long (per row when ``per_row``)."""
    name: str               # the C identifier
    ref: str                # the IR value or parameter it holds
    type: TensorType
    region: str
    offset: int = 0
    elements: int = 0
    per_row: bool = False
    panel: int = 0          # width of the column panels of a panel-packed matrix, else 0
    writable: bool = True
    layer: str = ""         # sanitised, for the comment

    @property
    def size(self) -> int:
        """Values in one row (all of them when unbatched)."""
        return self.type.row_size

    @property
    def batched(self) -> bool:
        return self.type.batched

    @property
    def declared(self) -> bool:
        """Whether the step body declares it (the row regions are the function's own
        arguments)."""
        return self.region not in UNDECLARED

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Scalar:
    """A number passed by value (the batch size m, the learning rate, ...)."""
    name: str
    ref: str
    type: TensorType

    def __str__(self) -> str:
        return self.name


Arg = Union[Buffer, Scalar]

CONSTANTS_PER_LINE = 16


@dataclass(frozen=True)
class Constant:
    """An integer parameter baked into the source as a static array named like its
    buffer (region Q), in the order its kernel reads it (``packing``, one of
    layout.PACKINGS, or "" for row-major)."""
    buffer: Buffer
    values: np.ndarray
    packing: str = ""

    @property
    def ctype(self) -> str:
        return CTYPES[self.buffer.type.dtype]

    @property
    def size(self) -> int:
        return self.values.size

    @property
    def nbytes(self) -> int:
        return self.values.nbytes

    @property
    def lines(self) -> list:
        flat = self.values.reshape(-1).tolist()
        return [flat[i:i + CONSTANTS_PER_LINE] for i in range(0, len(flat), CONSTANTS_PER_LINE)]

    def __hash__(self):
        return hash(self.buffer)

    def __eq__(self, other):
        return (isinstance(other, Constant) and self.buffer == other.buffer
                and self.packing == other.packing
                and np.array_equal(self.values, other.values))


@dataclass(frozen=True)
class Call:
    """One kernel call: ``kernel`` (templates/ops/<kernel>.c.j2 unless the target says
    otherwise) on ``args`` (operand name -> Buffer or Scalar, the op's own operand names,
    and ``y`` the result) with the constant ``attrs``."""
    kernel: str
    op: str
    layer: str              # sanitised
    ir: str                 # sanitised IR text of the node(s) it runs
    args: Mapping
    attrs: Mapping = field(default_factory=dict)

    def __post_init__(self):
        shadowed = set(self.args) & set(dir(self))
        if shadowed:        # templates read call.<name>: an attribute would win
            raise ValueError(f"operands of {self.kernel} named like Call attributes: "
                             f"{sorted(shadowed)}")
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))

    def __getitem__(self, name: str) -> Arg:      # templates write call.x
        return self.args[name]

    def __contains__(self, name: str) -> bool:
        return name in self.args

    def __reduce__(self):
        return (Call, (self.kernel, self.op, self.layer, self.ir, dict(self.args),
                       dict(self.attrs)))

    @property
    def buffers(self) -> tuple:
        return tuple(a for a in self.args.values() if isinstance(a, Buffer))


@dataclass(frozen=True)
class Program:
    """Kernel calls in order, the buffers they name (declared once, in order of first
    use) and the facts the entry points and the Python API need."""
    kind: str               # "inference" or "train"
    dtype: str
    calls: tuple
    regions: Mapping        # region -> elements (per row for the row regions and a
                            # training arena)
    params: ParamLayout     # the parameter (inference) or state (training) block
    n_inputs: int
    n_outputs: int
    blocks: GemmBlocks      # the kernels' blocks (packed panels, int8 rows), per task
    ir_lines: tuple
    tile_rows: Optional[int] = None     # inference: rows per tile
    cost: Optional[Arg] = None          # training: the scalar cost
    output_widths: tuple = ()           # inference: the width of each output; several sit
                                        # side by side in each row of y, in order (and the
                                        # arena ends with a tile of y's rows)
    constants: tuple = ()               # a quantized model's integer parameters (Q)
    output_dtype: str = ""              # inference: y's dtype when not ``dtype`` (a
                                        # quantized model's int8 output)

    @property
    def output_ctype(self) -> str:
        """The C type of the output rows (y)."""
        return CTYPES[self.output_dtype or self.dtype]

    @property
    def output_starts(self) -> tuple:
        """The first column of each output in y."""
        return tuple(sum(self.output_widths[:k]) for k in range(len(self.output_widths)))

    @property
    def entries(self) -> dict:
        """Role -> the C name of the entry point (ENTRIES of the program's kind)."""
        return ENTRIES[self.kind]

    @property
    def constant_bytes(self) -> int:
        return sum(c.nbytes for c in self.constants)

    @property
    def buffers(self) -> tuple:
        seen = {}
        for call in self.calls:
            for buffer in call.buffers:
                seen.setdefault(buffer.name, buffer)
        if isinstance(self.cost, Buffer):
            seen.setdefault(self.cost.name, self.cost)
        return tuple(seen.values())

    @property
    def declared(self) -> tuple:
        """The buffers a step body declares: the parameters, then the values in order of
        first use."""
        return tuple(sorted((b for b in self.buffers if b.declared),
                            key=lambda b: b.region not in ("P", "S")))

    @property
    def ctype(self) -> str:
        return CTYPES[self.dtype]

    @property
    def itemsize(self) -> int:
        return DTYPES[self.dtype].itemsize

    @property
    def arena_elements(self) -> int:
        return self.regions["A"]

    @property
    def n_params(self) -> int:
        return self.params.size

    @property
    def arena_bytes(self) -> int:
        return self.arena_elements * self.itemsize

    @property
    def block_bytes(self) -> int:
        return self.blocks.elements * self.itemsize

    @property
    def workspace_elements(self) -> int:
        """Inference: the scratch memory of a call on one task, whatever the batch."""
        return self.arena_elements + self.blocks.elements

    @property
    def workspace_bytes(self) -> int:
        return self.workspace_elements * self.itemsize


# The products of the kernels that call the matrix multiply, as the keyword arguments of
# gemm_blocks of a call run on at most `rows` batch rows (see templates/ops/).
PRODUCTS = {
    "dense": lambda call, rows: dict(
        M=rows, N=call["y"].size, K=call["x"].size, lda=call["x"].size,
        b_panels=call["W"].panel > 0),
    "matmul_nt": lambda call, rows: dict(
        M=rows, N=call["y"].size, K=call["dy"].size, lda=call["dy"].size, trans_b=True),
    "matmul_tn": lambda call, rows: dict(
        M=call["x"].size, N=call["dy"].size, K=rows, lda=call["x"].size, trans_a=True),
}


def program_blocks(calls, rows, itemsize: int) -> GemmBlocks:
    """Blocks that fit every product of ``calls`` run on at most ``rows`` rows."""
    blocks = GemmBlocks()
    for call in calls:
        if call.kernel in PRODUCTS:
            blocks = blocks.union(gemm_blocks(itemsize=itemsize,
                                              **PRODUCTS[call.kernel](call, rows)))
        elif call.kernel == "qdense" and call["x"].type.dtype == "i8":
            blocks = blocks.union(qdense_blocks(itemsize))
    return blocks


# ---------------------------------------------------------------- naming

ROLE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def value_name(ref: str) -> str:
    """``v9`` for the IR value %9."""
    number = ref[1:]
    if not number.isdigit():
        raise ValueError(f"an IR value ref is % and a number, got {ref!r}")
    return f"v{number}"


def param_names(graph: Graph) -> dict:
    """param ref -> ``p<index>`` and, when it reads as an identifier, the parameter's role
    (the text after the layer: ``p3_W``, ``p9_W_m``, ``p2_W_folded``)."""
    names = {}
    for i, ref in enumerate(graph.params):
        parts = ref[1:].split(".")[1:]
        while parts and not ROLE.fullmatch(parts[0].replace(":", "_")):
            parts.pop(0)
        role = "_".join(parts).replace(":", "_")
        names[ref] = f"p{i}_{role}" if ROLE.fullmatch(role) else f"p{i}"
    return names


def layers(graph: Graph) -> dict:
    """value ref -> the sanitised layer of the node that computes it."""
    return {ref: safe_comment(node.layer or node.op) for node in graph.nodes for ref in node.outs}


def node_call(node: Node, graph: Graph, arg) -> Call:
    op = OPS[node.op]
    return Call(kernel=op.template, op=node.op, layer=safe_comment(node.layer or node.op),
                ir=safe_comment(format_node(node, with_layer=False)),
                args={**{name: arg(ref) for name, ref in zip(op.inputs, node.inputs)},
                      "y": arg(node.out)},
                attrs=node.attrs)


# ---------------------------------------------------------------- inference

def inference_program(graph: Graph, tile_rows: int = TILE_ROWS, panel: int = None,
                      packed: bool = True, packings: Mapping = None,
                      ragged: bool = False) -> Program:
    """The program of an inference graph (one batched input, one output or several side by
    side in y): tiles of at most ``tile_rows`` rows, parameters in P (dense weights packed
    in panels ``panel`` columns wide, by default a cache line, the last ``ragged`` or
    zero-padded), activations in the arena A.  ``packed=False`` is for a target whose
    kernels pack nothing: no blocks for the matrix multiply."""
    (x_ref, x_type), = graph.inputs.items()
    types = graph.types()
    widths = tuple(types[ref].row_size for ref in graph.outputs)
    # One output is written straight into y; several are computed in the arena (one may
    # be read after it is final) and then put side by side into y.
    out_ref = graph.outputs[0] if len(widths) == 1 else None
    y_type = TensorType((BATCH, sum(widths)), output_dtype(graph))
    y = Buffer("y", out_ref or "%y", y_type, "y", elements=y_type.row_size, per_row=True)
    plan = plan_memory(graph, tile_rows, exclude={out_ref} - {None})
    if out_ref is None:     # a tile of y at the arena's end, for an entry with one pointer
        plan = MemoryPlan(plan.offsets, plan.size + buffer_elements(y_type, tile_rows,
                                                                    x_type.np_dtype.itemsize))
    layout = inference_layout(graph, panel, ragged)
    arg = inference_args(graph, plan, layout, tile_rows, x_ref, out_ref)
    calls = [node_call(node, graph, arg) for node in graph.nodes]
    if out_ref is not None and out_ref not in {n.out for n in graph.nodes}:
        calls.append(Call("copy", "copy", "output", "copy to output",
                          {"x": arg(out_ref), "y": y}))
    if out_ref is None:
        starts = [sum(widths[:k]) for k in range(len(widths))]
        calls += [Call("put_columns", "put_columns", "output",
                       safe_comment(f"output {k}: {ref} into columns [{start}, "
                                    f"{start + width}) of y"),
                       {"x": arg(ref), "y": y}, {"ld": y_type.row_size, "start": start})
                  for k, (ref, start, width) in enumerate(zip(graph.outputs, starts, widths))]
    itemsize = x_type.np_dtype.itemsize
    return Program(
        kind="inference", dtype=x_type.dtype, calls=tuple(calls),
        regions={"P": layout.size, "A": plan.size, "x": x_type.row_size,
                 "y": y_type.row_size},
        params=layout, n_inputs=x_type.row_size, n_outputs=y_type.row_size,
        blocks=program_blocks(calls, tile_rows, itemsize) if packed else GemmBlocks(),
        ir_lines=tuple(ir_lines(graph)), tile_rows=tile_rows, output_widths=widths,
        constants=integer_constants(graph, arg, packings),
        output_dtype=y_type.dtype if y_type.dtype != x_type.dtype else "")


def output_dtype(graph: Graph) -> str:
    """The dtype of y: the input's, or the integer type of a quantized model's one output."""
    types = graph.types()
    if not any(types[ref].is_integer for ref in graph.outputs):
        return next(iter(graph.inputs.values())).dtype
    if len(graph.outputs) > 1:
        raise ValueError(f"a model with an integer output returns it alone; outputs "
                         f"{[str(types[r]) for r in graph.outputs]}")
    return types[graph.outputs[0]].dtype


def param_packings(graph: Graph, overrides: Mapping = None) -> dict:
    """Parameter ref -> the packing its kernel reads it in (``overrides`` of its kernel,
    else Kernel.packed)."""
    packings, overrides = {}, overrides or {}
    for node in graph.nodes:
        kernel = OPS[node.op].kernel
        packed = dict(overrides.get(kernel.template, kernel.packed))
        for name, ref in zip(OPS[node.op].inputs, node.inputs):
            if name in packed and ref in graph.params:
                if packings.setdefault(ref, packed[name]) != packed[name]:
                    raise ValueError(f"parameter {ref} is read in two packings")
    return packings


def integer_constants(graph: Graph, arg, overrides: Mapping = None) -> tuple:
    """The integer parameters of ``graph`` as the static arrays of region Q."""
    packings = param_packings(graph, overrides)
    return tuple(Constant(arg(ref), PACKINGS[packings[ref]](param.value) if ref in packings
                          else param.value, packings.get(ref, ""))
                 for ref, param in graph.params.items() if param.type.is_integer)


def inference_args(graph: Graph, plan: MemoryPlan, layout: ParamLayout, tile_rows: int,
                   x_ref: str, out_ref: str):
    """ref -> its Buffer, for an inference program."""
    types, names, layer = graph.types(), param_names(graph), layers(graph)

    def arg(ref: str) -> Buffer:
        type_ = types[ref]
        if ref in graph.params and type_.is_integer:
            return Buffer(names[ref], ref, type_, "Q", 0, type_.row_size, writable=False,
                          layer=safe_comment(graph.params[ref].layer))
        if ref in graph.params:
            panel = layout.panels.get(ref, 0)
            return Buffer(names[ref], ref, type_, "P", layout.offsets[ref],
                          panels_size(type_.shape, panel, layout.ragged) if panel
                          else type_.row_size,
                          panel=panel, writable=False)
        if ref == x_ref:
            return Buffer("x", ref, type_, "x", 0, type_.row_size, per_row=True,
                          writable=False)
        if ref == out_ref:
            return Buffer("y", ref, type_, "y", 0, type_.row_size, per_row=True,
                          layer=layer.get(ref, ""))
        return Buffer(value_name(ref), ref, type_, "A", plan.offsets[ref],
                      buffer_elements(type_, tile_rows), layer=layer[ref])
    return arg


# ---------------------------------------------------------------- training

TRAIN_ROWS = {"%x": ("x", "x"), "%y": ("t", "t")}           # ref -> (C name, region)
TRAIN_SCALARS = {"%m": "m", "%lr": "lr", "%step": "step", "%seed": "seed"}


@dataclass(frozen=True)
class TrainLayout:
    """Where every value of a training graph lives: the state block S (parameters and
    optimizer state, persistent), the fixed scratch U (unbatched values such as
    gradients) and the batch arena A (``per_row`` elements per batch row)."""
    state: ParamLayout
    fixed: MemoryPlan
    per_row: MemoryPlan
    in_place: dict          # update value ref -> the parameter it is computed over


def in_place_updates(graph: Graph) -> dict:
    """Updates whose element-wise op reads the parameter as the operand in the result's
    position (its first, for an op of one result), with no later reader of the parameter:
    those are computed straight into the state block."""
    position = {ref: i for i, node in enumerate(graph.nodes) for ref in node.outs}
    readers = graph.users()
    in_place = {}
    for param, value in graph.updates:
        node = graph.nodes[position[value]] if value in position else None
        if (node is None or node.inputs[node.outs.index(value):][:1] != (param,)
                or value in graph.outputs or not OPS[node.op].kernel.in_place):
            continue
        if all(position[r.out] <= position[value] for r in readers.get(param, [])):
            in_place[value] = param
    return in_place


def train_layout(graph: Graph) -> TrainLayout:
    in_place = in_place_updates(graph)
    for param, value in graph.updates:
        if value not in in_place:
            raise ValueError(f"the update {param} <- {value} cannot be computed in place: it "
                             f"needs an element-wise update op reading {param} last")
    batched = {ref for n in graph.nodes if n.type.batched for ref in n.outs}
    unbatched = {ref for n in graph.nodes for ref in n.outs} - batched
    return TrainLayout(
        state=param_layout(graph),
        fixed=plan_memory(graph, 1, exclude=batched | set(in_place)),
        per_row=plan_memory(graph, 1, exclude=unbatched | set(in_place)),
        in_place=in_place)


def train_args(graph: Graph, layout: TrainLayout):
    """ref -> its Buffer or Scalar, for a training program (an in-place update is the
    buffer of its parameter)."""
    types, names, layer = graph.types(), param_names(graph), layers(graph)

    def arg(ref: str) -> Arg:
        type_ = types[ref]
        ref = layout.in_place.get(ref, ref)
        if ref in graph.params:
            return Buffer(names[ref], ref, type_, "S", layout.state.offsets[ref],
                          type_.row_size)
        if ref in TRAIN_SCALARS:
            return Scalar(TRAIN_SCALARS[ref], ref, type_)
        if ref in TRAIN_ROWS:
            name, region = TRAIN_ROWS[ref]
            return Buffer(name, ref, type_, region, 0, type_.row_size, per_row=True,
                          writable=False)
        if ref in layout.per_row.offsets:
            return Buffer(value_name(ref), ref, type_, "A", layout.per_row.offsets[ref],
                          buffer_elements(type_, 1), per_row=True, layer=layer[ref])
        return Buffer(value_name(ref), ref, type_, "U", layout.fixed.offsets[ref],
                      buffer_elements(type_, 1), layer=layer[ref])
    return arg


def training_program(graph: Graph) -> Program:
    """The program of a training graph with inputs %x, %y (batched) and %m, %lr, %step,
    %seed (scalars) and the cost as its output: one training step."""
    known = set(TRAIN_ROWS) | set(TRAIN_SCALARS)
    if set(graph.inputs) - known or set(TRAIN_ROWS) - set(graph.inputs):
        raise ValueError(f"a training graph has inputs {sorted(known)}, got "
                         f"{sorted(graph.inputs)}")
    layout = train_layout(graph)
    types = graph.types()
    cost, = graph.outputs
    arg = train_args(graph, layout)
    calls = [node_call(node, graph, arg) for node in graph.nodes]
    return Program(
        kind="train", dtype=graph.dtype, calls=tuple(calls),
        regions={"S": layout.state.size, "U": max(layout.fixed.size, 1),
                 "A": layout.per_row.size, "x": types["%x"].row_size,
                 "t": types["%y"].row_size},
        params=layout.state, n_inputs=types["%x"].row_size, n_outputs=types["%y"].row_size,
        blocks=program_blocks(calls, math.inf, DTYPES[graph.dtype].itemsize),
        ir_lines=tuple(ir_lines(graph)), cost=arg(cost))
