"""PyTorch as an independent judge of training: the same initial weights, data and batch
order, dropout off; after 20 steps of each optimizer the weights agree to rtol 1e-6 in
float64, with batch norm on and off, with and without L2.

The conventions are mapped explicitly:
- dlc Momentum keeps v = beta v + (1 - beta) dW and steps lr v.  torch.optim.SGD with
  momentum=beta, dampening=0 keeps buf = beta buf + dW, so buf = v / (1 - beta): the same
  steps come from torch lr = lr (1 - beta).
- dlc RMSProp(beta2, eps) is torch.optim.RMSprop(alpha=beta2, eps=eps) (eps outside the
  square root in both).  dlc Adam is torch.optim.Adam with betas=(beta1, beta2).
- dlc L2 adds lambda / (2 m) ||W||^2 to the cost, so lambda / m W to dW: torch
  weight_decay = lambda / m on the dense weights only (biases and BN parameters are not
  regularized by default in dlc), with every mini-batch of the same size m.
- dlc BatchNorm(momentum=0.9) is torch BatchNorm1d(momentum=0.1).  dlc's running variance
  averages the biased batch variance, torch's the unbiased one (m / (m - 1) times
  larger): with running_var starting at 1 and k steps of equal batches,
  torch_rv - 0.9^k = m / (m - 1) (dlc_rv - 0.9^k).
- The learning rate follows dlc's schedule per epoch, set on torch's param groups.
"""
import numpy as np
import pytest
import torch

import dlc
from dlc.train import compile_trainer

ROWS, BATCH, EPOCHS, SEED = 40, 8, 4, 13      # 5 steps per epoch, 20 steps
RTOL = 1e-6
SCHEDULE = dlc.InverseTimeDecay(decay_rate=0.5)
OPTIMIZERS = {
    "sgd": (lambda: dlc.SGD(lr=0.2, schedule=SCHEDULE),
            lambda params, lr: torch.optim.SGD(params, lr=lr)),
    "momentum": (lambda: dlc.Momentum(lr=0.2, beta=0.8, schedule=SCHEDULE),
                 lambda params, lr: torch.optim.SGD(params, lr=lr * (1 - 0.8), momentum=0.8,
                                                    dampening=0)),
    "rmsprop": (lambda: dlc.RMSProp(lr=0.01, beta2=0.9, eps=1e-8, schedule=SCHEDULE),
                lambda params, lr: torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-8)),
    "adam": (lambda: dlc.Adam(lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8, schedule=SCHEDULE),
             lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(0.85, 0.99), eps=1e-8)),
}
LR_FACTOR = {"momentum": 1 - 0.8}
LOSSES = {"cross_entropy": (dlc.Softmax, lambda: torch.nn.CrossEntropyLoss()),
          "binary_cross_entropy": (dlc.Sigmoid, lambda: torch.nn.BCEWithLogitsLoss()),
          "mse": (dlc.Tanh, lambda: torch.nn.MSELoss())}

HIDDEN = {"relu": (dlc.ReLU, torch.nn.ReLU), "elu": (lambda: dlc.ELU(alpha=0.8),
                                                      lambda: torch.nn.ELU(alpha=0.8)),
          "silu": (dlc.SiLU, torch.nn.SiLU)}


def dlc_net(batchnorm, loss, hidden="relu"):
    """Batch norm follows tanh: a bias right before it has a zero gradient that both
    sides compute as different rounding noise."""
    layers = [dlc.Input(5), dlc.Dense(8), dlc.Tanh()]
    layers += [dlc.BatchNorm(momentum=0.9)] if batchnorm else []
    layers += [dlc.Dense(6), HIDDEN[hidden][0](), dlc.Dense(3), LOSSES[loss][0]()]
    return dlc.Sequential(layers, dtype="float64", seed=3)


def torch_net(net, batchnorm, loss, hidden="relu"):
    """The same network in torch, holding a copy of the dlc initial weights."""
    p = net.get_params()
    modules = [torch.nn.Linear(5, 8), torch.nn.Tanh()]
    if batchnorm:
        modules.append(torch.nn.BatchNorm1d(8, eps=1e-5, momentum=0.1))
    modules += [torch.nn.Linear(8, 6), HIDDEN[hidden][1](), torch.nn.Linear(6, 3)]
    if loss == "mse":
        modules.append(torch.nn.Tanh())
    model = torch.nn.Sequential(*modules).double()
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for linear, name in zip(linears, ["dense1", "dense2", "dense3"]):
            linear.weight.copy_(torch.from_numpy(p[f"{name}.W"].T))
            linear.bias.copy_(torch.from_numpy(p[f"{name}.b"]))
        if batchnorm:
            model[2].weight.copy_(torch.from_numpy(p["batchnorm1.gamma"]))
            model[2].bias.copy_(torch.from_numpy(p["batchnorm1.beta"]))
    return model, linears


def data(loss):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, 5))
    if loss == "cross_entropy":
        return X, rng.integers(0, 3, ROWS)
    if loss == "binary_cross_entropy":
        return X, rng.integers(0, 2, (ROWS, 3)).astype(float)
    return X, rng.uniform(-0.5, 0.5, (ROWS, 3))


def train_torch(model, linears, optimizer, loss, l2, X, Y):
    weights = [l.weight for l in linears]
    others = [p for p in model.parameters() if all(p is not w for w in weights)]
    groups = [{"params": weights, "weight_decay": l2 / BATCH},
              {"params": others, "weight_decay": 0.0}]
    opt = OPTIMIZERS[optimizer][1](groups, 1.0)
    criterion = LOSSES[loss][1]()
    X = torch.from_numpy(X)
    Y = torch.from_numpy(Y) if loss != "cross_entropy" else torch.from_numpy(Y).long()
    lr0 = OPTIMIZERS[optimizer][0]().lr
    model.train()
    for epoch in range(EPOCHS):
        for group in opt.param_groups:
            group["lr"] = SCHEDULE(lr0, epoch) * LR_FACTOR.get(optimizer, 1.0)
        order = np.random.default_rng([SEED, epoch]).permutation(ROWS)
        for start in range(0, ROWS, BATCH):
            rows = torch.from_numpy(order[start:start + BATCH])
            opt.zero_grad()
            criterion(model(X[rows]), Y[rows]).backward()
            opt.step()


def check_against_torch(optimizer, batchnorm, loss, l2, hidden="relu"):
    X, Y = data(loss)
    net = dlc_net(batchnorm, loss, hidden)
    model, linears = torch_net(net, batchnorm, loss, hidden)
    trainer = compile_trainer(net, loss=loss, optimizer=OPTIMIZERS[optimizer][0](), l2=l2,
                              flags=("-O1",))
    trainer.fit(X, Y, epochs=EPOCHS, batch_size=BATCH, seed=SEED, progress=False)
    train_torch(model, linears, optimizer, loss, l2, X, Y)
    assert trainer.step == 20
    got = net.get_params()
    for linear, name in zip(linears, ["dense1", "dense2", "dense3"]):
        np.testing.assert_allclose(got[f"{name}.W"], linear.weight.detach().numpy().T, rtol=RTOL,
                                   err_msg=f"{name}.W")
        np.testing.assert_allclose(got[f"{name}.b"], linear.bias.detach().numpy(), rtol=RTOL,
                                   err_msg=f"{name}.b")
        assert not np.allclose(got[f"{name}.W"], trainer.graph.params[f"@{name}.W"].value)
    if batchnorm:
        bn = model[2]
        np.testing.assert_allclose(got["batchnorm1.gamma"], bn.weight.detach().numpy(), rtol=RTOL)
        np.testing.assert_allclose(got["batchnorm1.beta"], bn.bias.detach().numpy(), rtol=RTOL)
        np.testing.assert_allclose(got["batchnorm1.running_mean"], bn.running_mean.numpy(),
                                   rtol=RTOL)
        decay = 0.9 ** trainer.step
        unbiased = decay + BATCH / (BATCH - 1) * (got["batchnorm1.running_var"] - decay)
        np.testing.assert_allclose(unbiased, bn.running_var.numpy(), rtol=RTOL)


@pytest.mark.parametrize("l2", [0.0, 0.5])
@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_cross_entropy_training_matches_torch(optimizer, batchnorm, l2):
    check_against_torch(optimizer, batchnorm, "cross_entropy", l2)


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "mse"])
def test_other_losses_match_torch(loss):
    check_against_torch("adam", True, loss, 0.5)


@pytest.mark.parametrize("hidden", ["elu", "silu"])
def test_hidden_activations_match_torch(hidden):
    """torch.nn.ELU and torch.nn.SiLU, forward and backward, through 20 Adam steps."""
    check_against_torch("adam", True, "cross_entropy", 0.0, hidden)
