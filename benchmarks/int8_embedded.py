"""int8 against float32 on the Cortex-M targets, for one trained digits net (sklearn's
digits, 64-64-32-10, ReLU, softmax; int8: per-channel minmax on 500 training rows): flash
(code, constants, total) and workspace as the export's footprint states them (the
target's compiler, -Os), and the instructions one prediction executes under
qemu-system-arm -icount shift=0 (mps2-an386; SysTick read around 100 predictions, see
tests/c/cortex_m_rows.c).  Instructions, not cycles: QEMU models no pipeline, no flash
wait states, and counts an SMLAD (2 MACs) or a soft-float call's every instruction
alike.  The Cortex-M0 builds run on the same emulated M4 (Armv6-M is a subset); the M7
is built and measured for flash only (its double-precision FPU code would fault on the
M4).  "m4 no DSP" is the M4 int8 export built with -U__ARM_FEATURE_DSP: the plain int8
loop instead of SMLAD.  Not part of the tests: nothing here is asserted.

    python benchmarks/int8_embedded.py [--rows N] [--repeats N]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

import dlc  # noqa: E402
from test_quant_embedded import run_on_cortex_m  # noqa: E402

RUNS = (("cortex-m4", ()), ("cortex-m4", ("-U__ARM_FEATURE_DSP",)), ("cortex-m0", ()),
        ("cortex-m7", None))


def digits_net():
    """(trained float net, 500 calibration rows, test rows, test labels)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X.astype(np.float32), y, test_size=0.3,
                                          random_state=0)
    net = dlc.Sequential([dlc.Input(64), dlc.data.fit_normalize(Xtr), dlc.Dense(64), dlc.ReLU(),
                          dlc.Dense(32), dlc.ReLU(), dlc.Dense(10), dlc.Softmax()], seed=0)
    trainer = dlc.compile(net, mode="train", loss="cross_entropy", optimizer=dlc.Adam(lr=3e-3))
    trainer.fit(Xtr, np.eye(10)[ytr], epochs=40, batch_size=32, seed=0)
    return net, Xtr[:500], Xte, yte


def measure(model, target, extra, X, repeats, directory: Path) -> dict:
    exported = dlc.export_c(model, directory, name="net", target=target)
    f = exported.footprint
    row = dict(flash=f.flash, code=f.code, rodata=f.rodata, workspace=exported.workspace_bytes,
               stack=f.stack, instructions=None, printed=None)
    if extra is not None:
        row["printed"], row["instructions"] = run_on_cortex_m(exported, X, directory, repeats,
                                                              extra)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args(argv)
    net, calibration, Xte, yte = digits_net()
    qnet = dlc.quantize(net, calibration)
    X = Xte[:args.rows]
    models = {"float32": net, "int8": qnet}
    print(f"digits 64-64-32-10; test accuracy float32 "
          f"{(dlc.reference(net).predict(Xte).argmax(1) == yte).mean():.2%}, int8 "
          f"{(qnet.predict(Xte).argmax(1) == yte).mean():.2%} ({len(Xte)} rows)")
    print(f"{'target':16}{'model':9}{'flash':>7}{'code':>7}{'consts':>8}{'workspace':>10}"
          f"{'stack':>7}{'instr/pred':>12}  agrees with Python")
    for target, extra in RUNS:
        for kind, model in models.items():
            if extra and kind == "float32":
                continue
            label = target[7:] if not extra else "m4 no DSP"
            with tempfile.TemporaryDirectory() as tmp:
                r = measure(model, target, extra, X, args.repeats, Path(tmp))
            agree = ""
            if r["printed"] is not None:
                expected = (qnet.predict(X) if kind == "int8" else
                            dlc.reference(net).predict(X))
                agree = ("bit for bit" if np.array_equal(r["printed"], expected) else
                         f"max |diff| {np.abs(r['printed'] - expected).max():.2g}")
            instructions = f"{r['instructions']:.0f}" if r["instructions"] else "-"
            print(f"{'cortex-' + label if not extra else label:16}{kind:9}{r['flash']:7}"
                  f"{r['code']:7}{r['rodata']:8}{r['workspace']:10}{r['stack']:7}"
                  f"{instructions:>12}  {agree}")


if __name__ == "__main__":
    main()
