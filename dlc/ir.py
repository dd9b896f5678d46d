"""The IR: typed values with static shapes, small immutable nodes, and a graph.

A value is referred to by a string with a sigil: ``%x`` for a graph input,
``%3`` for a node's result and ``@fc1.W`` for a parameter.  Shapes are static
except the leading batch dimension, which is the symbol ``B``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .ops import check_attrs, infer_type, lookup
from .shapes import BATCH, DTYPES, TensorType, dtype_code, type_of  # noqa: F401  (the IR's types)
@dataclass(frozen=True)
class Param:
    """A named constant of the graph: its value and how training treats it."""
    value: np.ndarray
    trainable: bool = True
    regularized: bool = False
    layer: str = ""

    @property
    def type(self) -> TensorType:
        return type_of(self.value)


@dataclass(frozen=True)
class Node:
    out: str
    op: str
    inputs: tuple
    attrs: Mapping = field(default_factory=dict)
    type: TensorType = None
    layer: str = ""
    more: tuple = ()        # the refs of further results (a fused optimizer update's new
                            # moments), each of type ``type``

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "attrs", MappingProxyType(dict(self.attrs)))
        object.__setattr__(self, "more", tuple(self.more))

    @property
    def outs(self) -> tuple:
        """Every result's ref, ``out`` first."""
        return (self.out, *self.more)

    def __reduce__(self):       # a mappingproxy does not pickle; its dict does
        return (Node, (self.out, self.op, self.inputs, dict(self.attrs), self.type, self.layer,
                       self.more))


@dataclass(frozen=True)
class Graph:
    inputs: Mapping          # "%x" -> TensorType
    params: Mapping          # "@fc1.W" -> Param
    nodes: tuple
    outputs: tuple           # refs
    updates: tuple = ()      # (param ref, value ref): new parameter values, for training graphs
    labels: Mapping = field(default_factory=dict)   # "%x" -> the name the user gave the input

    def __post_init__(self):
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "updates", tuple(self.updates))
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    def __reduce__(self):
        return (Graph, (dict(self.inputs), dict(self.params), self.nodes, self.outputs,
                        self.updates))

    def types(self) -> dict:
        """Every value's type, keyed by ref."""
        table = dict(self.inputs)
        table.update((ref, p.type) for ref, p in self.params.items())
        table.update((ref, n.type) for n in self.nodes for ref in n.outs)
        return table

    def producers(self) -> dict:
        return {ref: n for n in self.nodes for ref in n.outs}

    def users(self) -> dict:
        """ref -> list of nodes that read it (a side table, never stored on nodes)."""
        table = {}
        for node in self.nodes:
            for ref in node.inputs:
                table.setdefault(ref, []).append(node)
        return table

    def replace(self, **changes) -> "Graph":
        return replace(self, **changes)

    @property
    def dtype(self) -> str:
        return next(iter(self.inputs.values())).dtype

    def __str__(self) -> str:
        return format_graph(self)


def format_attr(value) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_node(node: Node, with_layer: bool = True) -> str:
    args = list(node.inputs) + [f"{k}={format_attr(v)}" for k, v in sorted(node.attrs.items())]
    comment = f"  # {node.layer}" if node.layer and with_layer else ""
    return f"{', '.join(node.outs)} : {node.type} = {node.op}({', '.join(args)}){comment}"


def format_input(ref: str, type_: TensorType, label: str = None) -> str:
    return f"{ref} : {type_}" + (f" {label!r}" if label else "")


def format_graph(graph: Graph) -> str:
    inputs = (format_input(r, t, graph.labels.get(r)) for r, t in graph.inputs.items())
    lines = ["graph(" + ", ".join(inputs) + ") {"]
    for ref, param in graph.params.items():
        lines.append(f"  {ref} : {param.type}")
    lines += ["  " + format_node(n) for n in graph.nodes]
    for param, value in graph.updates:
        lines.append(f"  {param} <- {value}")
    lines.append("  return " + ", ".join(graph.outputs))
    lines.append("}")
    return "\n".join(lines)


class GraphBuilder:
    """Appends nodes with fresh names, inferring each result type from the op registry."""

    def __init__(self, inputs=None, params=None, nodes=(), start=0, labels=None):
        self.inputs = dict(inputs or {})
        self.labels = dict(labels or {})
        self.params = dict(params or {})
        self.nodes = list(nodes)
        self.counter = start
        self._types = None
        self.updates = []        # (param ref, value ref), e.g. running statistics in training

    @classmethod
    def extending(cls, graph: Graph) -> "GraphBuilder":
        numbers = [int(r[1:]) for n in graph.nodes for r in n.outs if r[1:].isdigit()]
        return cls(graph.inputs, graph.params, graph.nodes, max(numbers, default=-1) + 1,
                   graph.labels)

    def input(self, name: str, type_: TensorType, label: str = None) -> str:
        """The input ``%name``; ``label``, the user's name for it, shows in the IR text
        (the ref stays fixed: the C backends know the input as %x)."""
        ref = "%" + name
        self.inputs[ref] = type_
        if label:
            self.labels[ref] = label
        return ref

    def param(self, name: str, value: np.ndarray, **info) -> str:
        ref = "@" + name
        if ref in self.params:
            raise ValueError(f"duplicate parameter name {name!r}")
        self.params[ref] = Param(value, **info)
        return ref

    def type(self, ref: str) -> TensorType:
        if ref in self.inputs:
            return self.inputs[ref]
        if ref in self.params:
            return self.params[ref].type
        for node in reversed(self.nodes):
            if ref in node.outs:
                return node.type
        raise KeyError(f"unknown value {ref}")

    def add(self, op: str, *inputs: str, layer: str = "", **attrs) -> str:
        """The ref of the new node's (first) result; ``nodes[-1].outs`` has them all."""
        attrs = check_attrs(op, attrs, layer)
        type_ = infer_type(op, [self.type(r) for r in inputs], attrs, layer)
        outs = [f"%{self.counter + k}" for k in range(len(lookup(op).results))]
        self.counter += len(outs)
        self.nodes.append(Node(outs[0], op, inputs, attrs, type_, layer, more=outs[1:]))
        return outs[0]

    def update(self, param: str, value: str) -> None:
        """Record that ``param`` takes the value ``value`` after the graph runs."""
        self.updates.append((param, value))

    def build(self, outputs, updates=()) -> Graph:
        return Graph(self.inputs, self.params, self.nodes, tuple(outputs),
                     tuple(self.updates) + tuple(updates), self.labels)
