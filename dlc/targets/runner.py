"""The runner: one C module per dtype and compiler flags that executes any Program given
as data, so a new configuration (new widths, new hyperparameters) needs no compiler run.

The runner's C is made from the same kernel templates as a specialised build: each op's
template is rendered once with runtime values in place of the constants (``P(k)``, the
k-th operand's pointer; ``N(k)``, its row size; ``PANEL(k)``; ``ATTR(j)``, the op's j-th
attribute as a double), and becomes one case: a function, called through a table.  The
cases are split over a few translation units compiled in parallel (a cold build takes
the longest of them instead of the sum).  A program is then a table of
records: the case, and for every operand its region, offset, size and panel, and the
attributes' values.  The shapes, the offsets and every hyperparameter an attribute holds
(betas, eps, l2/l1, keep_prob, alpha, the dropout streams) are data, read at run time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..ops import ACTIVATIONS, OPS
from ..program import Buffer, Call, Program
from ..render import CTYPES, RuntimeValue, render
from ..version import __version__
from . import render_with_runtime
from .trainer import TRAINER

MAX_OPERANDS = 8            # adam_update: W, m, s, g, lr, t and its result
MAX_ATTRS = 4               # the last one holds an activation kernel's activation
OPERAND_INTS = 4            # region (+ 8 when per row), offset, row size, panel
RECORD_INTS = 2 + MAX_OPERANDS * OPERAND_INTS
# Where an operand lives: the parameters or state (P/S), the fixed scratch U, the arena A,
# the input rows x, the target or output rows (t/y) and K, the step's scalars.
REGIONS = {"P": 0, "S": 0, "U": 1, "A": 2, "x": 3, "t": 4, "y": 4, "K": 5}
PER_ROW = 8
STEP_SCALARS = ("m", "lr", "step", "seed")      # K[0..3], as the training program names them
KERNELS_BEYOND_OPS = {"copy": ("x",)}           # calls of no op: the copy to the output
ACTIVATION_INDEX = {name: i for i, name in enumerate(ACTIVATIONS)}
REST_PARTS = 2              # translation units of the kernels without a matrix multiply


class Operand(RuntimeValue):
    """The symbolic k-th operand of a call: its pointer, with its size and panel."""

    def __new__(cls, k: int, batched: bool):
        self = super().__new__(cls, f"P({k})")
        self.size, self.panel = RuntimeValue(f"N({k})"), RuntimeValue(f"PANEL({k})")
        self.region, self.batched = "runtime", batched
        return self


@dataclass(frozen=True)
class Case:
    id: int
    ops: tuple              # the ops (and whether their result is batched) it serves
    text: str

    @property
    def label(self) -> str:
        """The ops it serves, for its comment (an op's unbatched variant named only when
        it has a case of its own)."""
        batched = {op for op, b in self.ops if b}
        names = dict.fromkeys(op if b or op in batched else f"{op} (unbatched)"
                              for op, b in self.ops)
        return ", ".join(names)


def operand_names(op: str) -> tuple:
    inputs = KERNELS_BEYOND_OPS[op] if op in KERNELS_BEYOND_OPS else OPS[op].inputs
    return (*inputs, "y")


def attr_names(op: str) -> tuple:
    return tuple(OPS[op].attrs) if op in OPS else ()


def activation_of(op: str):
    """The C name of the activation an op's kernel applies or differentiates, or None."""
    return OPS[op].kernel.activation if op in OPS else None


def symbolic_call(op: str, batched: bool) -> Call:
    kernel = op if op in KERNELS_BEYOND_OPS else OPS[op].template
    return Call(kernel, op, op, op,
                {name: Operand(k, batched) for k, name in enumerate(operand_names(op))},
                {name: RuntimeValue(f"ATTR({j})") for j, name in enumerate(attr_names(op))})


def case_text(op: str, batched: bool) -> str:
    """The op's template with runtime values; an activation's C name is one too (the
    ``ACTIVATION`` of its record), so all activations share one case, compiled once."""
    text = render(TRAINER.template(symbolic_call(op, batched)),
                  call=symbolic_call(op, batched)).strip()
    act = activation_of(op)
    return re.sub(rf"\b{act}\b", "ACTIVATION", text) if act else text


@lru_cache(maxsize=1)
def runner_ops() -> list:
    """The ops the runner executes: every float op (a quantized model is not trained, and
    its integer ops run in its compiled library)."""
    return [*sorted(name for name, op in OPS.items() if not op.integer), *KERNELS_BEYOND_OPS]


@lru_cache(maxsize=1)
def cases() -> tuple:
    """The distinct kernel texts of every op the runner executes, batched result or not."""
    texts = {}
    for op in runner_ops():
        if len(operand_names(op)) > MAX_OPERANDS or len(attr_names(op)) >= MAX_ATTRS:
            raise AssertionError(f"{op} has more operands or attributes than a runner record")
        for batched in (True, False):
            texts.setdefault(case_text(op, batched), []).append((op, batched))
    return tuple(Case(i, tuple(ops), text) for i, (text, ops) in enumerate(texts.items()))


@lru_cache(maxsize=1)
def case_ids() -> dict:
    return {key: case.id for case in cases() for key in case.ops}


@lru_cache(maxsize=1)
def parts() -> tuple:
    """The cases in translation units that take about as long to compile (the build
    compiles them in parallel): those of the matrix multiply (the dense layer and the
    matrix products, which share its out-of-line parts: most of the runner's compile
    time), then the other kernels dealt round to REST_PARTS units."""
    products = tuple(c for c in cases() if re.search(r"\bdlc_(dense|gemm)\(", c.text))
    rest = [c for c in cases() if c not in products]
    return (products, *(tuple(rest[i::REST_PARTS]) for i in range(REST_PARTS)))


@lru_cache(maxsize=None)
def generate_runner(dtype: str):
    """(header, source, parts) of the runner module for ``dtype`` ("f32" or "f64"): the
    cffi module's own C (the entry points) and that of the translation units of cases
    linked into it."""
    context = dict(ctype=CTYPES[dtype], cases=cases(), parts=parts(), max_operands=MAX_OPERANDS,
                   record_ints=RECORD_INTS, max_attrs=MAX_ATTRS, operand_ints=OPERAND_INTS,
                   regions=len(set(REGIONS.values())), per_row=PER_ROW,
                   version=__version__, ir_lines=("none: the runner takes programs as data",))
    header = render("runner.h.j2", **context)
    units = tuple(render_with_runtime("runner_cases.c.j2", **dict(context, part=i, cases=part))
                  for i, part in enumerate(parts()))
    return header, render_with_runtime("runner.c.j2", header=header, **context), units


# ---------------------------------------------------------------- a program as data

@dataclass(frozen=True)
class Records:
    """A program as the runner reads it: ``ints`` (calls x RECORD_INTS), ``reals`` (calls x
    MAX_ATTRS) and ``meta`` (the sizes its entry point needs)."""
    ints: np.ndarray
    reals: np.ndarray
    meta: np.ndarray

    @property
    def n_calls(self) -> int:
        return self.ints.shape[0]


def operand_code(arg) -> tuple:
    """(region code, offset, row size, panel) of a call's operand."""
    if isinstance(arg, Buffer):
        return (REGIONS[arg.region] + (PER_ROW if arg.per_row else 0), arg.offset, arg.size,
                arg.panel)
    return REGIONS["K"], STEP_SCALARS.index(arg.name), 1, 0


def activation_name(op: str) -> str:
    """The ACTIVATIONS entry whose C name the op's kernel carries."""
    return next(name for name, act in ACTIVATIONS.items()
                if act.c_name == activation_of(op))


def attr_value(value) -> float:
    return float(ACTIVATION_INDEX[value] if isinstance(value, str) else value)


def encode(program: Program) -> Records:
    ints = np.zeros((len(program.calls), RECORD_INTS), np.int64)
    reals = np.zeros((len(program.calls), MAX_ATTRS), np.float64)
    for i, call in enumerate(program.calls):
        names = operand_names(call.op)
        if (call.op, call["y"].batched) not in case_ids():
            raise ValueError(f"the runner has no kernel for op {call.op!r} (layer "
                             f"{call.layer}); compile this model with backend='c'")
        ints[i, :2] = case_ids()[call.op, call["y"].batched], len(names)
        for k, name in enumerate(names):
            start = 2 + k * OPERAND_INTS
            ints[i, start:start + OPERAND_INTS] = operand_code(call[name])
        for j, name in enumerate(attr_names(call.op)):
            reals[i, j] = attr_value(call.attrs[name])
        if activation_of(call.op):
            reals[i, MAX_ATTRS - 1] = ACTIVATION_INDEX[activation_name(call.op)]
    blocks = (program.blocks.a_elements, program.blocks.b_elements)
    if program.kind == "train":
        meta = (program.n_inputs, program.n_outputs, program.regions["U"], program.regions["A"],
                *blocks, *operand_code(program.cost)[:2])
    else:
        meta = (program.n_inputs, program.n_outputs, program.tile_rows, program.arena_elements,
                *blocks, 0, 0)
    return Records(ints, reals, np.array(meta, np.int64))
