"""int8 against float32 inference on the host: batch-1 latency and batch-256 throughput of
dlc's float32 library, its int8 library (dlc.quantize, per-channel minmax), onnxruntime on
the float ONNX graph, and onnxruntime on its own quantize_static QDQ model of the same
net.  Not part of the tests: speed is measured here, never asserted.

    python benchmarks/int8.py [--quick] [--workloads small,mnist,wide] [--accuracy]

Each table gives, beside the times, the ratios to dlc's float32 library (>1: faster) in the
same run: latencies and throughputs are medians of interleaved rounds.  The header names the
CPU, its vector extensions and the int8 kernel the native build takes (runtime/quant.h).

``--accuracy`` prints instead the test accuracy of the float and the quantized models on
digits and breast cancer (trained here, calibrated on at most 500 training rows), for
per-channel and per-tensor weights, each calibration, int8 and int16 activations.

(The Cortex-M figures wait for the embedded target.)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dlc  # noqa: E402
from run import cpu_isa, cpu_name  # noqa: E402
from timing import side_by_side  # noqa: E402
from workloads import WORKLOADS, dlc_net  # noqa: E402


def ort_sessions(net, X, directory: Path):
    """onnxruntime sessions on the float graph and on its quantize_static QDQ model (int8
    activations and per-channel int8 weights, calibrated on X), all optimisations on."""
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Rows(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": X[i:i + 100]} for i in range(0, len(X), 100)])

        def get_next(self):
            return next(self.batches, None)

    ort.set_default_logger_severity(3)
    dlc.to_onnx(net, directory / "float.onnx", folded=True)
    quantize_static(str(directory / "float.onnx"), str(directory / "int8.onnx"), Rows(),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return {name: ort.InferenceSession(str(directory / f"{name}.onnx"), options,
                                       providers=["CPUExecutionProvider"])
            for name in ("float", "int8")}


def measure(workload, runs: int, min_seconds: float):
    rng = np.random.default_rng(0)
    net = dlc_net(workload)
    X = rng.normal(size=(500, net.n_inputs)).astype(np.float32)
    qnet = dlc.quantize(net, X)
    f32, i8 = dlc.compile(net), dlc.compile(qnet)
    agree = (f32.predict(X).argmax(1) == i8.predict(X).argmax(1)).mean()
    with tempfile.TemporaryDirectory() as tmp:
        sessions = ort_sessions(net, X, Path(tmp))
        rows = {}
        for batch in (1, 256):
            xb = X[:batch] if batch <= len(X) else np.resize(X, (batch, X.shape[1]))
            peers = {"dlc float32": lambda: f32.predict(xb), "dlc int8": lambda: i8.predict(xb),
                     "onnxruntime float32": lambda: sessions["float"].run(None, {"x": xb}),
                     "onnxruntime int8": lambda: sessions["int8"].run(None, {"x": xb})}
            rows[batch] = side_by_side(peers, runs, min_seconds)
    bytes_ = {"dlc float32": net_param_bytes(qnet.float_graph),
              "dlc int8": qnet.weight_bytes}
    return rows, bytes_, agree


def net_param_bytes(graph) -> int:
    return sum(p.value.nbytes for p in graph.params.values())


def int8_kernel(isa: str) -> str:
    """The int8 dense kernel the -march=native build takes (runtime/quant.h)."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx512bw" in flags:
        return ("AVX-512 6 x 16 tile, vpdpwssd" if " avx512_vnni" in flags
                else "AVX-512 6 x 16 tile, vpmaddwd")
    if "AVX2" in isa:
        return "AVX2 6 x 16 tile and 1 x 32 row kernel, vpmaddwd"
    return "plain C"


def print_header() -> None:
    isa = cpu_isa()
    print(f"CPU: {cpu_name()} ({isa}); int8 kernel: {int8_kernel(isa)}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print()


def print_table(workload, rows, bytes_, agree) -> None:
    print(f"== {workload.name} {'-'.join(map(str, workload.sizes))} (ReLU, softmax), "
          f"1 thread ==")
    print(f"{'':22}{'batch-1 us':>12}{'x f32':>7}{'batch-256 samples/s':>22}{'x f32':>7}"
          f"{'param bytes':>14}")
    base1, base256 = rows[1]["dlc float32"], rows[256]["dlc float32"]
    for name in rows[1]:
        latency, seconds = rows[1][name], rows[256][name]
        print(f"{name:22}{latency * 1e6:12.2f}{base1 / latency:7.2f}{256 / seconds:22.0f}"
              f"{base256 / seconds:7.2f}{bytes_.get(name, ''):>14}")
    ort1, ort256 = rows[1]["onnxruntime int8"], rows[256]["onnxruntime int8"]
    print(f"dlc int8 / onnxruntime int8: batch 1 {ort1 / rows[1]['dlc int8']:.2f}x, "
          f"batch 256 {ort256 / rows[256]['dlc int8']:.2f}x (>1: dlc faster)")
    print(f"int8 top-1 equals float32's on {agree:.1%} of the calibration rows")
    print()


def accuracy_table() -> None:
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split
    for name, loader, hidden, final, loss in (
            ("digits", load_digits, (64, 32), dlc.Softmax, "cross_entropy"),
            ("breast cancer", load_breast_cancer, (32, 16), dlc.Sigmoid, "binary_cross_entropy")):
        X, y = loader(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split(X.astype(np.float32), y, test_size=0.3,
                                              random_state=0)
        layers = [dlc.Input(X.shape[1]), dlc.data.fit_normalize(Xtr)]
        for units in hidden:
            layers += [dlc.Dense(units), dlc.ReLU()]
        n_out = 10 if final is dlc.Softmax else 1
        net = dlc.Sequential(layers + [dlc.Dense(n_out), final()], seed=0)
        Y = np.eye(10)[ytr] if n_out == 10 else ytr[:, None]
        trainer = dlc.compile(net, mode="train", loss=loss, optimizer=dlc.Adam(lr=3e-3))
        trainer.fit(Xtr, Y, epochs=40, batch_size=32, seed=0)

        def accuracy(predict):
            out = predict(Xte)
            labels = out.argmax(1) if n_out > 1 else (out[:, 0] > 0.5).astype(int)
            return (labels == yte).mean()
        print(f"== {name}: test accuracy, float32 {accuracy(dlc.reference(net).predict):.2%} "
              f"({len(Xte)} test rows, calibration on {min(len(Xtr), 500)}) ==")
        print(f"{'weights':12}{'activations':13}" + "".join(f"{c:>12}" for c in
                                                           ("minmax", "percentile", "mse")))
        for per_channel in (True, False):
            for activations in ("int8", "int16"):
                cells = [accuracy(dlc.compile(dlc.quantize(
                    net, Xtr[:500], activations=activations, per_channel=per_channel,
                    calibration=c)).predict) for c in ("minmax", "percentile", "mse")]
                print(f"{'per-channel' if per_channel else 'per-tensor':12}{activations:13}"
                      + "".join(f"{a:12.2%}" for a in cells))
        print()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workloads", default="small,mnist,wide")
    parser.add_argument("--accuracy", action="store_true")
    args = parser.parse_args(argv)
    if args.accuracy:
        accuracy_table()
        return
    runs, min_seconds = (3, 0.02) if args.quick else (9, 0.2)
    print_header()
    for name in args.workloads.split(","):
        workload = WORKLOADS[name]
        print_table(workload, *measure(workload, runs, min_seconds))


if __name__ == "__main__":
    main()
