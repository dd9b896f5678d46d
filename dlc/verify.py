"""The verifier: rejects malformed graphs with a message that names the node."""
from __future__ import annotations

import numpy as np

from .ir import Graph
from .ops import OPS, check_attrs, infer_type


class VerifyError(ValueError):
    pass


def verify(graph: Graph) -> Graph:
    """Check every invariant of ``graph`` and return it unchanged."""
    if not graph.inputs:
        raise VerifyError("graph has no inputs")
    for ref in graph.inputs:
        _check_ref(ref, "%")
    for ref, param in graph.params.items():
        _check_ref(ref, "@")
        if not isinstance(param.value, np.ndarray):
            raise VerifyError(f"parameter {ref} is not a NumPy array")
    types = dict(graph.inputs)
    types.update((ref, p.type) for ref, p in graph.params.items())
    for node in graph.nodes:
        where = f"node {node.out} ({node.op})"
        for ref in node.outs:
            _check_ref(ref, "%")
            if ref in types or node.outs.count(ref) > 1:
                raise VerifyError(f"{where}: value {ref} is defined twice")
        if node.op not in OPS:
            raise VerifyError(f"{where}: unknown op")
        if len(node.outs) != len(OPS[node.op].results):
            raise VerifyError(f"{where}: {len(node.outs)} results, the op has "
                              f"{len(OPS[node.op].results)} {OPS[node.op].results}")
        missing = [r for r in node.inputs if r not in types]
        if missing:
            raise VerifyError(f"{where}: uses {missing} before definition")
        try:
            attrs = check_attrs(node.op, node.attrs, node.layer)
            expected = infer_type(node.op, [types[r] for r in node.inputs], attrs, node.layer)
        except (ValueError, TypeError) as exc:
            raise VerifyError(f"{where}: {exc}") from None
        if attrs != dict(node.attrs):
            raise VerifyError(f"{where}: attributes {dict(node.attrs)} lack defaults {attrs}")
        if expected != node.type:
            raise VerifyError(f"{where}: declared type {node.type}, shape rule gives {expected}")
        types.update((ref, node.type) for ref in node.outs)
    if not graph.outputs:
        raise VerifyError("graph has no outputs")
    for ref in graph.outputs:
        if ref not in types:
            raise VerifyError(f"output {ref} is not defined")
    for param, value in graph.updates:
        if param not in graph.params:
            raise VerifyError(f"update of {param}, which is not a parameter")
        if value not in types or types[value] != graph.params[param].type:
            raise VerifyError(f"update of {param} by {value}: types differ or value undefined")
    return graph


def _check_ref(ref: str, sigil: str) -> None:
    if not isinstance(ref, str) or len(ref) < 2 or ref[0] != sigil:
        raise VerifyError(f"bad value name {ref!r}: expected {sigil}name")
