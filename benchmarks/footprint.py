"""What an exported model costs, per model and export target: code (text), constants
(the weights), data, bss, worst-case stack (gcc's -fstack-usage through the call graph,
with what the library functions it calls take and, on x86-64, each leaf's red zone),
"frames" (the file's own frames in that chain: all -fstack-usage alone reports) and
workspace, measured on the object each target's compiler builds; and on this x86-64
machine, batch-1 latency of the host and generic exports next to a hand-written
plain-loop C of the same net (plain_mlp.c), at three flag sets: CPU time per call, the
median of several rounds in which every program runs in turn.

    python benchmarks/footprint.py [--quick]
"""
from __future__ import annotations

import argparse
import dataclasses
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import dlc  # noqa: E402
from dlc.build import compiler_command  # noqa: E402
from dlc.inspect import measure_footprint  # noqa: E402
from dlc.lower import lower  # noqa: E402
from dlc.passes import INFERENCE_PIPELINE, run_pipeline  # noqa: E402
from dlc.targets.export import TARGETS, c_literal  # noqa: E402
from workloads import WORKLOADS, dlc_net  # noqa: E402

HOST_FLAGS = {"-O2": ("-O2",), "-O3 native": ("-O3", "-march=native"),
              "-O3 native fast-math": ("-O3", "-march=native", "-ffast-math")}
COLUMNS = ("target", "flags", "text", "weights", "data", "bss", "flash", "stack", "frames",
           "workspace", "batch-1 us")


def plain_weights(net) -> str:
    """plain_weights.h for plain_mlp.c: the folded dense layers of ``net`` (out, in)."""
    graph = run_pipeline(lower(net), INFERENCE_PIPELINE)
    dense = [n for n in graph.nodes if n.op == "dense"]
    lines, layers = ["/* Weights for plain_mlp.c, written by footprint.py. */"], []
    for i, node in enumerate(dense):
        W, b = (graph.params[r].value.astype(np.float32) for r in node.inputs[1:])
        for name, values in ((f"W{i}", W.T.reshape(-1)), (f"B{i}", b)):
            lines.append(f"static const float {name}[{values.size}] = {{"
                         + ", ".join(c_literal(v, "f32") for v in values) + "};")
        layers.append(f"L({i}, {W.shape[0]}, {W.shape[1]}, "
                      f"{int(node.attrs['activation'] == 'relu')})")
    widest = max(n.type.row_size for n in dense)
    return "\n".join([*lines, f"#define PLAIN_LAYERS(L) {' '.join(layers)}",
                      f"#define PLAIN_WIDEST {widest}",
                      f"#define BENCH_N_INPUTS {graph.inputs['%x'].row_size}",
                      f"#define BENCH_N_OUTPUTS {dense[-1].type.row_size}", ""])


def harness(sources, include: Path, flags, exe: Path) -> Path:
    subprocess.run([*compiler_command(), *flags, f"-I{include}", str(HERE / "harness.c"),
                    *map(str, sources), "-o", str(exe), "-lm"], check=True,
                   capture_output=True, text=True)
    return exe


def cpu_seconds(exe: Path, calls: int) -> float:
    """CPU time (user + system) of one harness run of ``calls`` batch-1 calls: on a
    loaded machine wall time also counts the waits for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([str(exe), str(calls), "1", "1"], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def interleaved_us(programs: dict, seconds: float, rounds: int) -> dict:
    """label -> us of CPU per batch-1 call: the median over ``rounds`` of the difference
    between runs of n calls (about ``seconds`` long) and of n / 10 (which cancels the
    start-up), the programs run in turn so that the machine's load hits them alike."""
    calls = {label: max(100, int(seconds * 1000 / max(cpu_seconds(exe, 1000), 1e-4)))
             for label, exe in programs.items()}
    times = {label: [] for label in programs}
    for _ in range(rounds):
        for label, exe in programs.items():
            n = calls[label]
            spent = cpu_seconds(exe, n) - cpu_seconds(exe, n // 10)
            times[label].append(spent / (n - n // 10) * 1e6)
    return {label: float(np.median(t)) for label, t in times.items()}


def row(target, flags, fp, us=None) -> tuple:
    return (target, flags, fp.text, fp.rodata, fp.data, fp.bss, fp.flash, fp.stack,
            fp.frames, fp.workspace, "-" if us is None else f"{us:.3f}")


def model_rows(net, quick: bool) -> list:
    seconds, rounds = (0.03, 3) if quick else (0.3, 11)
    rows = []
    for name, target in TARGETS.items():
        with tempfile.TemporaryDirectory() as tmp:
            exported = dlc.export_c(net, tmp, name="bench", target=name)
            fp = exported.footprint or measure_footprint(
                exported.source, "bench", target, exported.workspace_bytes)
            rows.append(row(name, " ".join(target.flags[1:]), fp))
    with tempfile.TemporaryDirectory() as tmp:
        measured, programs = {}, {}
        for name in ("host", "generic"):
            target = TARGETS[name]
            out = Path(tmp) / name
            exported = dlc.export_c(net, out, name="bench", target=name, footprint=False)
            for label, flags in HOST_FLAGS.items():
                built = dataclasses.replace(target, flags=("-std=gnu99", *flags))
                key = (f"{name} (x86-64)", label)
                measured[key] = measure_footprint(exported.source, "bench", built,
                                                  exported.workspace_bytes)
                programs[key] = harness([exported.source], out, built.flags,
                                        out / f"harness{len(programs)}")
        plain = Path(tmp) / "plain"
        plain.mkdir()
        (plain / "plain_weights.h").write_text(plain_weights(net))
        (plain / "bench.h").write_text((HERE / "plain_bench.h").read_text())
        for label, flags in HOST_FLAGS.items():
            built = dataclasses.replace(TARGETS["generic"], flags=("-std=gnu99", f"-I{plain}",
                                                                   *flags))
            key = ("hand-written plain loops (x86-64)", label)
            measured[key] = measure_footprint(HERE / "plain_mlp.c", "bench", built, 0)
            programs[key] = harness([HERE / "plain_mlp.c"], plain, built.flags,
                                    plain / f"harness{len(programs)}")
        us = interleaved_us(programs, seconds, rounds)
    return rows + [row(*key, measured[key], us[key]) for key in programs]


def print_table(title: str, rows: list) -> None:
    cells = [COLUMNS] + [tuple(map(str, r)) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    print(f"== {title} ==")
    for c in cells:
        print("  ".join(v.ljust(w) if i < 2 else v.rjust(w)
                        for i, (v, w) in enumerate(zip(c, widths))))
    print()


def print_ratios(rows: list) -> None:
    """Batch-1 latency of the host and generic exports over the hand-written loops'."""
    us = {(r[0].split(" (")[0], r[1]): float(r[-1]) for r in rows if r[-1] != "-"}
    for label in HOST_FLAGS:
        plain = us[("hand-written plain loops", label)]
        print(f"batch 1, {label}: " + ", ".join(
            f"{name} / plain loops {us[(name, label)] / plain:.2f}" for name in ("host", "generic")))
    print()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small model, short timings")
    args = parser.parse_args(argv)
    names = ["small"] if args.quick else ["small", "mnist"]
    for name in names:
        w = WORKLOADS[name]
        rows = model_rows(dlc_net(w), args.quick)
        print_table(f"footprint: {name} {'-'.join(map(str, w.sizes))}, float32, bytes", rows)
        print_ratios(rows)


if __name__ == "__main__":
    main()
