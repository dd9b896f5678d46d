"""The training graph: the forward pass in training form, the loss, the penalty, the
backward pass and the optimizer's updates, as one IR graph that the C backend and
the reference interpreter both run."""
from __future__ import annotations

from ..autodiff import backward
from ..dsl import Model
from ..ir import BATCH, Graph, GraphBuilder, TensorType
from ..lower import lower
from ..optim import Optimizer
from ..passes import TRAINING_PIPELINE, run_pipeline
from ..verify import verify
from .losses import lookup_loss

SCALAR_INPUTS = ("m", "lr", "step", "seed")
MAX_SEED = 1 << 24      # seeds are fed to the graph as exact float32 scalars


def training_graph(net: Model, loss: str, optimizer: Optimizer, l2: float = 0.0,
                   l1: float = 0.0, regularize=None, fuse: bool = True) -> Graph:
    """The whole training step of ``net`` as one IR graph: ``cost_graph`` followed by
    the backward pass and the optimizer's updates of every trainable parameter, fused
    (``TRAINING_PIPELINE``) unless ``fuse`` is false."""
    with_cost = cost_graph(net, loss, l2, l1, regularize)
    cost, = with_cost.outputs
    b = GraphBuilder.extending(with_cost)
    for param, value in with_cost.updates:
        b.update(param, value)
    for param, grad in backward(b, with_cost, cost).items():
        optimizer.emit(b, param, grad, "%lr", "%step")
    graph = verify(b.build([cost]))
    return run_pipeline(graph, TRAINING_PIPELINE) if fuse else graph


def cost_graph(net: Model, loss: str, l2: float = 0.0, l1: float = 0.0,
               regularize=None) -> Graph:
    """The forward pass in training form and the cost (loss + penalty) as its output.

    Inputs: %x and %y (targets) of the mini-batch, and scalars %m (its size), %lr,
    %step (t, from 1) and %seed.  Updates: the batch-norm running statistics.
    """
    if net.multi_output:
        raise ValueError(f"the model has {len(net.output_layers)} outputs; dlc trains a model "
                         f"with one output (one loss): train a model of one output that "
                         f"shares the layers, or list one output")
    forward = lower(net, "train")
    pred, nodes = fused_prediction(forward, loss)
    b = GraphBuilder.extending(forward.replace(nodes=nodes))
    scalar = TensorType((), forward.dtype)
    targets = b.input("y", TensorType((BATCH, net.n_outputs), forward.dtype))
    m, *_ = [b.input(name, scalar) for name in SCALAR_INPUTS]     # all four, always
    cost = b.add(lookup_loss(loss).op, pred, targets, layer="loss")
    for ref in regularized_params(forward, regularize):
        for kind, lam in (("l2", l2), ("l1", l1)):
            if lam:
                term = b.add(f"{kind}_penalty", ref, m, layer=forward.params[ref].layer, lam=lam)
                cost = b.add("add", cost, term, layer="loss")
    return verify(b.build([cost], forward.updates))


def fused_prediction(forward: Graph, loss: str):
    """(the value the loss reads, the forward nodes it needs): cross-entropy losses read
    the logits before the final softmax/sigmoid, which they fuse."""
    activation = lookup_loss(loss).activation
    out, = forward.outputs
    if activation is None:
        return out, forward.nodes
    final = forward.producers().get(out)
    if final is None or final.op != activation:
        ends = f"layer {final.layer!r} ({final.op})" if final else "its input"
        raise ValueError(f"loss {loss!r} needs the network to end with a "
                         f"{activation.capitalize()} layer (fused into the loss), but it ends "
                         f"with {ends}")
    return final.inputs[0], forward.nodes[:-1]


def regularized_params(forward: Graph, regularize) -> list:
    """The parameter refs the penalty applies to: by default the dense weights
    (``regularized`` in the model), else the names listed in ``regularize``."""
    if regularize is None:
        return [ref for ref, p in forward.params.items() if p.regularized]
    if isinstance(regularize, str):
        regularize = [regularize]
    refs = []
    for name in regularize:
        ref = "@" + str(name)
        if ref not in forward.params or not forward.params[ref].trainable:
            trainable = [r[1:] for r, p in forward.params.items() if p.trainable]
            raise ValueError(f"regularize: {name!r} is not a trainable parameter; "
                             f"the model has {trainable}")
        refs.append(ref)
    return refs
