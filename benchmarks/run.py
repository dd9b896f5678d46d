"""dlc benchmark suite: dlc against PyTorch, ONNX Runtime and NumPy, measured side by side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py [--quick]

Prints, for the machine's fp32 FMA peak (clock measured): the matrix-multiply GFLOP/s of
dlc's kernel next to NumPy's BLAS; per workload, inference latency (batch 1: Python
binding and a pure C harness around the exported code) and throughput (batch 256), and
training samples/s (batch 64 and 256); cold-build and cache-hit compile times.  Every
figure is the median of interleaved runs; ratios say how many times faster dlc is.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import dlc  # noqa: E402
from dlc.build import build, compiler_command  # noqa: E402
from dlc.targets.kernels import generate_gemm_module  # noqa: E402
from timing import side_by_side  # noqa: E402
from workloads import WORKLOADS, dlc_net, onnx_model, torch_net  # noqa: E402

PEERS = ("PyTorch", "ONNX Runtime", "NumPy")
# The targets: dlc at least this many times faster (same threads).
INFERENCE_TARGETS = {("small", 1): ("ONNX Runtime", 10), ("mnist", 1): ("ONNX Runtime", 1.5),
                     ("small", 256): ("ONNX Runtime", 2), ("mnist", 256): ("ONNX Runtime", 1.1),
                     ("wide", 256): ("ONNX Runtime", 1.1)}
TRAINING_TARGETS = {("small", 64): 5, ("mnist", 64): 2, ("mnist", 256): 1.5, ("wide", 256): 1.3}


# ---------------------------------------------------------------- machine

def kernel_module():
    """(ffi, lib, isa) of dlc's kernels as dlc.compile builds them (native flags); isa says
    what they were built for: {"isa", "vec_bytes", "mr", "nr"}."""
    ffi, lib = build(*generate_gemm_module("f32"))
    name, numbers = ffi.new("char[]", 32), [ffi.new("int *") for _ in range(3)]
    lib.dlc_kernel_isa(name, 32, *numbers)
    vec_bytes, mr, nr = (n[0] for n in numbers)
    return ffi, lib, dict(isa=ffi.string(name).decode(), vec_bytes=vec_bytes, mr=mr, nr=nr)


def machine_peak(vec_bytes: int) -> dict:
    """Clock from a dependent-add chain; fp32 FMA GFLOP/s from an FMA-throughput loop at the
    width of the kernels' vectors (vec_bytes: the widest this CPU runs, as -march=native
    builds them); the FMA units per core are what that loop measures, rounded."""
    width = vec_bytes if vec_bytes in (16, 32, 64) else 16
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "clock"
        subprocess.run([*compiler_command(), "-O2", f"-DVEC_BYTES={width}", str(HERE / "clock.c"),
                        "-o", str(exe)], check=True, capture_output=True)
        ghz, fma = map(float, subprocess.run([str(exe)], check=True, capture_output=True,
                                             text=True).stdout.split())
    lanes = width // 4
    units = max(1, round(fma / (ghz * lanes * 2)))
    # Both loops are best-of-250 lower bounds on a busy machine; the FMA loop bounds the
    # clock too.
    ghz = max(ghz, fma / (units * lanes * 2))
    return dict(ghz=ghz, fma_loop=fma, units=units, lanes=lanes, vec_bytes=width,
                core_peak=ghz * units * lanes * 2, cores=os.cpu_count())


def blas_info() -> str:
    from threadpoolctl import threadpool_info
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        return "NumPy BLAS: unknown"
    i = blas[0]
    text = f"NumPy BLAS: {i.get('internal_api')} {i.get('version')}, kernel {i.get('architecture')}"
    forced = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if forced:
        text += f"  (WARNING: {', '.join(forced)} set: unset them for a fair comparison)"
    return text


def print_machine(peak: dict, kernel: dict) -> None:
    print("== machine ==")
    print(f"CPU: {cpu_name()}, {peak['cores']} cores, {platform.python_implementation()} "
          f"{platform.python_version()}, numpy {np.__version__}")
    print(f"CPU vector ISA: {cpu_isa()}; dlc kernels (native flags) built for {kernel['isa']}: "
          f"{kernel['vec_bytes']}-byte vectors, {kernel['mr']} x {kernel['nr']} register tile")
    print(f"clock {peak['ghz']:.2f} GHz (dependent-add chain, FMA loop); fp32 FMA peak per core = "
          f"{peak['ghz']:.2f} GHz x {peak['units']} FMA units x {peak['lanes']} lanes "
          f"({peak['vec_bytes']}-byte vectors) x 2 flops = {peak['core_peak']:.1f} GFLOP/s "
          f"(FMA loop at that width measures {peak['fma_loop']:.1f}; units = its rate / "
          f"(clock x lanes x 2), rounded); "
          f"{peak['cores']} cores: {peak['core_peak'] * peak['cores']:.1f}")
    print(blas_info())
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f}"
          + ("  (WARNING: a busy machine; figures, the multi-thread ones above all, are "
             "unreliable: re-run when it is quiet)" if load > 0.5 else ""))
    print(flush=True)


def cpu_isa() -> str:
    """The widest x86 vector extensions /proc/cpuinfo lists (or the machine's name)."""
    try:
        flags = set(next(l for l in Path("/proc/cpuinfo").read_text().splitlines()
                         if l.startswith(("flags", "Features"))).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return platform.machine()
    found = [name for name, flag in (("AVX-512F", "avx512f"), ("AVX2", "avx2"), ("FMA", "fma"),
                                     ("SSE2", "sse2"), ("NEON", "asimd")) if flag in flags]
    return "+".join(found) or platform.machine()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ---------------------------------------------------------------- tables

def table(title: str, header: list, rows: list, notes=()) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    print(f"== {title} ==")
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    for note in notes:
        print(f"  {note}")
    print(flush=True)


def fmt(value, unit: str) -> str:
    if isinstance(value, Exception):
        return "error"
    if value is None:
        return "n/a"
    if unit == "us":
        return f"{value * 1e6:.1f}"
    if unit == "samples/s":
        return f"{value:,.0f}"
    return f"{value:.1f}"


def ratio(dlc_value, peer_value, higher_is_better: bool, target=None) -> str:
    if not all(isinstance(v, float) for v in (dlc_value, peer_value)):
        return "n/a"
    r = dlc_value / peer_value if higher_is_better else peer_value / dlc_value
    # A third decimal where two would round a miss up to the target (1.996x, not 2.00x).
    digits = 3 if target is not None and r < target <= round(r, 2) else 2
    text = f"{r:.{digits}f}x"
    if target is not None:
        text += f" ({'meets' if r >= target else 'MISSES'} {target}x)"
    return text


def errors_of(results: dict) -> list:
    return [f"{name}: {type(v).__name__}: {str(v).splitlines()[0][:150]}"
            for name, v in results.items() if isinstance(v, Exception)]


# ---------------------------------------------------------------- inference

def inference_engines(w, net, threads: int, X):
    """{engine: predict(X) callable} for dlc and its peers; PyTorch's and NumPy's thread
    counts are process-wide, set by ``peer_threads``."""
    import onnxruntime as ort
    import torch
    engines = {}
    compiled = dlc.compile(net, threads=threads)
    engines["dlc"] = compiled.predict
    model = torch_net(w, net, softmax=True).eval()

    def torch_predict(X):
        with torch.inference_mode():
            return model(torch.from_numpy(X))
    engines["PyTorch"] = torch_predict
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(onnx_model(net), options, providers=["CPUExecutionProvider"])
    engines["ONNX Runtime"] = lambda X: session.run(["y"], {"x": X})
    engines["NumPy"] = dlc.reference(net).predict
    check_agreement(engines, X, compiled)
    return engines


@contextlib.contextmanager
def peer_threads(threads: int):
    """PyTorch's and NumPy's BLAS thread counts, for the duration of a measurement."""
    import torch
    from threadpoolctl import threadpool_limits
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        torch.set_num_threads(before)


def settle_seconds(threads: int) -> float:
    return 0.25 if threads > 1 else 0.0


def check_agreement(engines: dict, X, compiled) -> None:
    """Every engine computes the same function (float32 tolerance) before we time it."""
    expected = compiled.predict(X)
    for name, predict in engines.items():
        got = predict(X)
        got = got[0] if isinstance(got, list) else got
        got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
        if not np.allclose(got, expected, rtol=1e-3, atol=1e-5):
            raise AssertionError(f"{name} disagrees with dlc: max diff "
                                 f"{np.abs(got - expected).max():.3g}")


def c_harness_latency(net, batch: int, calls: int, runs: int):
    """Median ns per call of the exported C (dlc.export_c) in a pure C program."""
    from dlc.export import export_c
    with tempfile.TemporaryDirectory() as tmp:
        export_c(net, tmp, name="bench")
        exe = Path(tmp) / "harness"
        subprocess.run([*compiler_command(), "-O3", "-march=native", f"-I{tmp}",
                        str(HERE / "harness.c"), str(Path(tmp) / "bench.c"), "-o", str(exe),
                        "-lm"], check=True, capture_output=True, text=True)
        out = subprocess.run([str(exe), str(calls), str(runs), str(batch)], check=True,
                             capture_output=True, text=True).stdout
    return float(out.split()[0]) * 1e-9


def bench_inference(w, threads_list, quick: bool, isa: str) -> None:
    net = dlc_net(w)
    rng = np.random.default_rng(0)
    rows, notes = [], []
    runs, min_seconds = (3, 0.01) if quick else (9, 0.05)
    try:
        harness = c_harness_latency(net, 1, 200 if quick else 2000, runs)
    except Exception as exc:   # noqa: BLE001
        harness = exc
        notes.append(f"C harness: {type(exc).__name__}: {str(exc).splitlines()[0][:150]}")
    for threads in threads_list:
        for batch in (1, 256):
            X = rng.normal(size=(batch, w.sizes[0])).astype(np.float32)
            engines = inference_engines(w, net, threads, X)
            with peer_threads(threads):
                times = side_by_side({name: (lambda f=f: f(X)) for name, f in engines.items()},
                                     runs, min_seconds, settle_seconds(threads))
            notes += [f"{threads} thread(s), batch {batch}: {e}" for e in errors_of(times)]
            target_peer, target = INFERENCE_TARGETS.get((w.name, batch), (None, None))
            if batch == 1:
                c_value = harness if threads == 1 else None
                rows.append([threads, "batch-1 latency (us)", fmt(times["dlc"], "us"),
                             fmt(c_value, "us"), *(fmt(times[p], "us") for p in PEERS),
                             *(ratio(times["dlc"], times[p], False,
                                     target if p == target_peer else None) for p in PEERS)])
            else:
                values = {k: (batch / v if isinstance(v, float) else v) for k, v in times.items()}
                rows.append([threads, "batch-256 samples/s", fmt(values["dlc"], "samples/s"), "",
                             *(fmt(values[p], "samples/s") for p in PEERS),
                             *(ratio(values["dlc"], values[p], True,
                                     target if p == target_peer else None) for p in PEERS)])
    notes.append(f"dlc: dlc.compile with the native flags, kernels built for {isa}")
    if isinstance(harness, float):
        notes.append(f"dlc C harness: exported code (dlc.export_c, isa=\"portable\") built with "
                     f"-O3 -march=native (so {isa}), 1 thread, called in a C loop; the Python "
                     "binding's overhead is the difference to the dlc column")
    table(f"{w.name} {w.describe()}: inference, float32",
          ["threads", "metric", "dlc", "dlc C harness", *PEERS,
           *(f"dlc vs {p}" for p in PEERS)], rows, notes)


# ---------------------------------------------------------------- training

def training_engines(w, batch: int, threads: int, X, Y):
    """{engine: one epoch over (X, Y) at ``batch``} for dlc, PyTorch and the NumPy reference."""
    import torch
    from dlc.train import reference_trainer
    engines, notes = {}, []
    options = dict(mode="train", loss="cross_entropy", optimizer=dlc.Adam(lr=1e-3))
    try:
        trainer = dlc.compile(dlc_net(w), threads=threads, **options)
    except TypeError:       # a trainer without a threads option runs on one thread
        trainer = dlc.compile(dlc_net(w), **options)
        notes.append(f"dlc trained on 1 thread at {threads} (the trainer has no threads option)")
    engines["dlc"] = lambda: trainer.fit(X, Y, epochs=1, batch_size=batch, progress=False)
    model = torch_net(w, dlc_net(w), softmax=False).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y.astype(np.int64))
    generator = torch.Generator().manual_seed(0)

    def torch_epoch():
        order = torch.randperm(len(Xt), generator=generator)
        for start in range(0, len(Xt), batch):
            index = order[start:start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(Xt[index]), Yt[index]).backward()
            optimizer.step()
    engines["PyTorch"] = torch_epoch
    reference = reference_trainer(dlc_net(w), loss="cross_entropy", optimizer=dlc.Adam(lr=1e-3))
    engines["NumPy"] = lambda: reference.fit(X, Y, epochs=1, batch_size=batch, progress=False)
    return engines, notes


STEPS = {"small": 100, "mnist": 16, "wide": 8}


def bench_training(w, threads_list, quick: bool) -> None:
    rows, notes = [], []
    runs, min_seconds = (3, 0.01) if quick else (7, 0.1)
    rng = np.random.default_rng(1)
    steps = max(1, STEPS[w.name] // (4 if quick else 1))
    for threads in threads_list:
        for batch in (64, 256):
            n = batch * steps
            X = rng.normal(size=(n, w.sizes[0])).astype(np.float32)
            Y = rng.integers(0, w.sizes[-1], size=n)
            try:
                engines, more_notes = training_engines(w, batch, threads, X, Y)
                notes += more_notes
            except Exception as exc:   # noqa: BLE001 - reported in the table
                engines = {"dlc": exc}
            with peer_threads(threads):
                times = side_by_side({k: v for k, v in engines.items() if callable(v)}, runs,
                                     min_seconds, settle_seconds(threads))
            times.update({k: v for k, v in engines.items() if not callable(v)})
            notes += [f"{threads} thread(s), batch {batch}: {e}" for e in errors_of(times)]
            values = {p: (n / times[p] if isinstance(times.get(p), float) else times.get(p))
                      for p in ("dlc", "PyTorch", "NumPy")}
            target = TRAINING_TARGETS.get((w.name, batch))
            rows.append([threads, batch, fmt(values["dlc"], "samples/s"),
                         fmt(values["PyTorch"], "samples/s"), fmt(values["NumPy"], "samples/s"),
                         ratio(values["dlc"], values["PyTorch"], True, target),
                         ratio(values["dlc"], values["NumPy"], True)])
    notes.append(f"one epoch of {steps} full steps (forward, "
                 "loss, backward, Adam) over shuffled data; PyTorch eager with "
                 "CrossEntropyLoss on logits")
    table(f"{w.name} {w.describe()}: training samples/s, float32",
          ["threads", "batch", "dlc", "PyTorch", "NumPy", "dlc vs PyTorch", "dlc vs NumPy"],
          rows, notes)


# ---------------------------------------------------------------- kernel

# Products per timed call: dlc_matmul allocates its packing blocks once per call (as a model
# allocates its workspace once), so one product per call would time a fresh mmap and its
# page faults (~20% of a 256^3 product) that no model pays.
KERNEL_REPEAT = 8


def bench_kernel(peak: dict, kernel, workloads, quick: bool) -> None:
    from threadpoolctl import threadpool_limits
    ffi, lib, isa = kernel
    lib.dlc_set_threads(1)
    shapes = [(n, n, n, 0, 0, "square") for n in (256, 512, 1024)]
    for w in workloads:
        shapes += [s for s in w.gemm_shapes(256 if w.name != "small" else 64)
                   if s[0] * s[1] * s[2] >= 64 ** 3 or w.name == "small"]
    if quick:
        shapes = shapes[:1] + [s for s in shapes if s[5] == "X W"][1:3]
    rows = []
    rng = np.random.default_rng(0)
    for M, N, K, ta, tb, role in shapes:
        A = rng.normal(size=(K, M) if ta else (M, K)).astype(np.float32)
        B = rng.normal(size=(N, K) if tb else (K, N)).astype(np.float32)
        C = np.empty((M, N), np.float32)
        pa, pb = ffi.from_buffer("float[]", A), ffi.from_buffer("float[]", B)
        pc = ffi.from_buffer("float[]", C)
        opA, opB = (A.T if ta else A), (B.T if tb else B)
        with threadpool_limits(1):
            times = side_by_side({
                "dlc": lambda: lib.dlc_matmul(ta, tb, M, N, K, pa, A.shape[1], pb, B.shape[1],
                                              0.0, pc, N, KERNEL_REPEAT),
                "NumPy": lambda: [np.matmul(opA, opB, out=C) for _ in range(KERNEL_REPEAT)]},
                3 if quick else 9, 0.01 if quick else 0.05)
        times = {k: v / KERNEL_REPEAT for k, v in times.items()}
        flops = 2 * M * N * K
        dlc_gf, np_gf = flops / times["dlc"] / 1e9, flops / times["NumPy"] / 1e9
        rows.append([f"{M}x{N}x{K}", role, f"{dlc_gf:.1f}", f"{dlc_gf / peak['core_peak']:.0%}",
                     f"{np_gf:.1f}", f"{np_gf / peak['core_peak']:.0%}", f"{dlc_gf / np_gf:.2f}"])
    table("matrix multiply, float32, 1 thread: GFLOP/s and fraction of the core's FMA peak",
          ["M x N x K", "product", "dlc", "dlc % peak", "NumPy BLAS", "BLAS % peak",
           "dlc / BLAS"], rows,
          [f"peak {peak['core_peak']:.1f} GFLOP/s per core ({peak['lanes']} lanes); target: dlc "
           ">= 80% of it and >= 0.95x BLAS for M, N, K >= 256",
           f"dlc built for {isa['isa']} ({isa['vec_bytes']}-byte vectors, {isa['mr']} x "
           f"{isa['nr']} tile); {blas_info()}",
           "shapes: each layer's three training products (batch 256; small at 64); "
           f"{KERNEL_REPEAT} products per timed call, both sides"])


# ---------------------------------------------------------------- compile time

def compile_seconds(name: str, cache: str) -> float:
    """Seconds of dlc.compile(net) in a fresh interpreter with cache directory ``cache``."""
    code = (f"import sys, time; sys.path[:0] = [{str(HERE.parent)!r}, {str(HERE)!r}]\n"
            "from workloads import WORKLOADS, dlc_net; import dlc\n"
            f"net = dlc_net(WORKLOADS[{name!r}]); t = time.perf_counter(); dlc.compile(net)\n"
            "print(time.perf_counter() - t)")
    env = dict(os.environ, DLC_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def bench_compile(workloads) -> None:
    rows = []
    for w in workloads:
        with tempfile.TemporaryDirectory() as cache:
            cold = compile_seconds(w.name, cache)
            hit = compile_seconds(w.name, cache)
        rows.append([w.name, f"{cold:.2f}", f"{hit * 1e3:.1f}"])
    table("compile time: dlc.compile(net), inference, float32",
          ["workload", "cold build (s)", "cache hit (ms)"], rows,
          ["each in a fresh Python process; cold: empty cache directory; hit: the same "
           "directory again; targets for mnist: cold < 3 s, hit < 50 ms"])


# ---------------------------------------------------------------- main

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small and mnist, 1 thread, few repeats: a smoke test (< 1 min)")
    parser.add_argument("--threads", default=None, help="comma-separated thread counts (1,2)")
    parser.add_argument("--workloads", default=None, help="comma-separated: small,mnist,wide")
    parser.add_argument("--only", default="kernel,inference,training,compile",
                        help="sections to run (comma-separated)")
    args = parser.parse_args(argv)
    names = (args.workloads or ("small,mnist" if args.quick else "small,mnist,wide")).split(",")
    workloads = [WORKLOADS[n] for n in names]
    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    sections = set(args.only.split(","))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        os.environ.setdefault("DLC_CACHE_DIR", cache)
        kernel = kernel_module()
        peak = machine_peak(kernel[2]["vec_bytes"])
        print_machine(peak, kernel[2])
        if "kernel" in sections:
            bench_kernel(peak, kernel, workloads, args.quick)
        for w in workloads:
            if "inference" in sections:
                bench_inference(w, threads, args.quick, kernel[2]["isa"])
            if "training" in sections:
                bench_training(w, threads, args.quick)
        if "compile" in sections:
            bench_compile(workloads[:1] if args.quick else workloads)
    print(f"total {time.perf_counter() - start:.1f} s; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
