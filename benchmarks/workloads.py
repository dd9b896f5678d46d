"""The benchmark workloads, built identically in dlc, PyTorch and ONNX from one set of weights."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import dlc


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple            # input, hidden..., output
    batchnorm: bool = False
    keep_prob: float = 1.0  # dropout between the hidden layers when < 1

    def describe(self) -> str:
        extras = ["ReLU"] + (["BatchNorm"] if self.batchnorm else [])
        if self.keep_prob < 1:
            extras.append(f"dropout keep {self.keep_prob}")
        return "-".join(map(str, self.sizes)) + f" ({', '.join(extras)}, softmax)"

    def gemm_shapes(self, batch: int) -> list:
        """(M, N, K, trans_a, trans_b, role) of the matrix products of one training step."""
        shapes = []
        for n_in, n_out in zip(self.sizes, self.sizes[1:]):
            shapes.append((batch, n_out, n_in, 0, 0, "X W"))
            shapes.append((batch, n_in, n_out, 0, 1, "dY W^T"))
            shapes.append((n_in, n_out, batch, 1, 0, "X^T dY"))
        return shapes


WORKLOADS = {
    "small": Workload("small", (64, 32, 10)),
    "mnist": Workload("mnist", (784, 256, 256, 10), batchnorm=True, keep_prob=0.8),
    "wide": Workload("wide", (1024, 1024, 1024, 10)),
}


def dlc_net(w: Workload, seed: int = 0) -> dlc.Sequential:
    layers = [dlc.Input(w.sizes[0])]
    for units in w.sizes[1:-1]:
        layers.append(dlc.Dense(units))
        if w.batchnorm:
            layers.append(dlc.BatchNorm())
        layers.append(dlc.ReLU())
        if w.keep_prob < 1:
            layers.append(dlc.Dropout(keep_prob=w.keep_prob))
    layers += [dlc.Dense(w.sizes[-1]), dlc.Softmax()]
    net = dlc.Sequential(layers, dtype="float32", seed=seed)
    if w.batchnorm:     # statistics as after training, so inference does real work
        rng = np.random.default_rng(seed)
        net.set_params({name: rng.uniform(0.5, 2.0, value.shape)
                        for name, value in net.get_params().items()
                        if name.endswith(("running_var", "gamma"))})
    return net


def layer_params(net) -> list:
    """Per dense layer: (W, b, batchnorm parameters or None), in order."""
    params = net.get_params()
    layers = []
    for i in range(1, 100):
        if f"dense{i}.W" not in params:
            break
        bn = None
        if f"batchnorm{i}.gamma" in params:
            bn = tuple(params[f"batchnorm{i}.{k}"] for k in
                       ("gamma", "beta", "running_mean", "running_var"))
        layers.append((params[f"dense{i}.W"], params[f"dense{i}.b"], bn))
    return layers


def torch_net(w: Workload, net, softmax: bool):
    """The same network in PyTorch with the same weights; logits unless ``softmax``."""
    import torch
    from torch import nn
    modules = []
    layers = layer_params(net)
    for i, (W, b, bn) in enumerate(layers):
        linear = nn.Linear(*W.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W.T.copy()))
            linear.bias.copy_(torch.from_numpy(b))
        modules.append(linear)
        if i == len(layers) - 1:
            break
        if bn is not None:
            norm = nn.BatchNorm1d(W.shape[1], eps=1e-5, momentum=0.1)
            with torch.no_grad():
                for tensor, value in zip((norm.weight, norm.bias, norm.running_mean,
                                          norm.running_var), bn):
                    tensor.copy_(torch.from_numpy(value))
            modules.append(norm)
        modules.append(nn.ReLU())
        if w.keep_prob < 1:
            modules.append(nn.Dropout(1 - w.keep_prob))
    if softmax:
        modules.append(nn.Softmax(dim=1))
    return nn.Sequential(*modules)


def onnx_model(net) -> bytes:
    """The inference network as ONNX (MatMul, Add, BatchNormalization, Relu, Softmax)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits = [], []
    layers = layer_params(net)
    x = "x"
    for i, (W, b, bn) in enumerate(layers):
        inits += [numpy_helper.from_array(W, f"W{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("MatMul", [x, f"W{i}"], [f"m{i}"]),
                  helper.make_node("Add", [f"m{i}", f"b{i}"], [f"z{i}"])]
        x = f"z{i}"
        if i == len(layers) - 1:
            break
        if bn is not None:
            names = [f"{k}{i}" for k in ("gamma", "beta", "mean", "var")]
            inits += [numpy_helper.from_array(v, n) for v, n in zip(bn, names)]
            nodes.append(helper.make_node("BatchNormalization", [x, *names], [f"n{i}"],
                                          epsilon=1e-5))
            x = f"n{i}"
        nodes.append(helper.make_node("Relu", [x], [f"h{i}"]))
        x = f"h{i}"
    nodes.append(helper.make_node("Softmax", [x], ["y"], axis=1))
    graph = helper.make_graph(
        nodes, "dlc_benchmark",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", net.n_inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", layers[-1][0].shape[1]])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
