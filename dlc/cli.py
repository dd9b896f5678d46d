"""The ``dlc`` command line (also ``python -m dlc``), built on click.

MODEL is a checkpoint written by ``dlc.save`` (a model, or a trainer: its model is
used).  Exit status: 0 on success, 1 when the job fails, 2 on a usage error.  A
failure prints one line; ``dlc --debug ...`` shows the traceback instead.
"""
from __future__ import annotations

import importlib.util
import shutil
import sys
import sysconfig
import time
from pathlib import Path

import click
import numpy as np

from .api import compile as compile_model
from .build import (FLAG_PRESETS, MAX_BYTES_VARIABLE, cache_dir, cache_modules, max_cache_bytes,
                    prune_cache)
from .checkpoint import build_model, read_bytes, save, unpack
from .export import check_name, export_c
from .targets.export import TARGETS, export_target
from .tune.prebuild import DTYPES as RUNNER_DTYPES, prebuild as build_runner
from .inspect import inspect as inspect_model
from .onnx import from_onnx, to_onnx
from .version import __version__

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ROWS_SUFFIXES = (".csv", ".npy")


class JobFailed(click.ClickException):
    """The command was well formed but its work failed: exit status 1, one line."""
    exit_code = 1


class Group(click.Group):
    """Turns any exception of a command into one line and exit status 1, unless
    ``--debug`` asks for the traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except JobFailed as exc:
            if ctx.params.get("debug") and exc.__cause__ is not None:
                raise exc.__cause__
            raise
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            raise JobFailed(one_line(exc)) from None


def one_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    if len(lines) > 1:
        text += " (dlc --debug ... shows the rest)"
    return text


def examples(*lines: str) -> str:
    """An epilog of example command lines, kept as written (click's \\b)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def interactive() -> bool:
    return sys.stderr.isatty()


def load_model(path):
    """The dlc.Model in a checkpoint; a trainer's model is read without compiling it."""
    manifest, arrays = unpack(read_bytes(path), path)
    if manifest.get("kind") not in ("model", "trainer"):
        raise ValueError(f"{path}: unknown checkpoint kind {manifest.get('kind')!r}")
    return build_model(manifest["model"], arrays)


MODEL = click.argument("model", type=click.Path(exists=True, dir_okay=False))


@click.group(cls=Group, epilog=examples("dlc inspect model.dlc",
                                        "dlc export model.dlc -o out/ --name digits",
                                        "dlc predict model.dlc rows.csv",
                                        "dlc --debug compile model.dlc"))
@click.version_option(__version__, prog_name="dlc")
@click.option("--debug", is_flag=True, help="Show the traceback of a failure.")
def cli(debug):
    """dlc: compile small dense networks to C.

    MODEL is a checkpoint written by dlc.save(model_or_trainer, path).  Exit status:
    0 on success, 1 when the job fails, 2 on a usage error.
    """


# ---------------------------------------------------------------- inspect

TARGET_HELP = ("Where the code runs: " + ", ".join(TARGETS) + " (the microcontrollers and "
               "generic take plain loops; their flash, RAM and stack are measured).")


def checked_target(target: str) -> str:
    try:
        return export_target(target).name
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--target") from None


@cli.command(epilog=examples("dlc inspect model.dlc", "dlc inspect --no-ir model.dlc",
                             "dlc inspect --no-code-size model.dlc",
                             "dlc inspect --no-ir model.dlc --target cortex-m4"))
@MODEL
@click.option("--ir/--no-ir", default=True, show_default=True,
              help="Print the IR before and after the inference passes.")
@click.option("--code-size/--no-code-size", default=True, show_default=True,
              help="Compile the exported C to measure its code and constant bytes.")
@click.option("--target", default="host", show_default=True, help=TARGET_HELP)
def inspect(model, ir, code_size, target):
    """The layers, the IR before and after the passes, and the byte counts (with
    --target, flash, RAM and stack as built for that target)."""
    target = checked_target(target)
    net = load_model(model)
    click.echo(layer_table(net))
    report = inspect_model(net, code_size=code_size, target=target)
    if ir:
        click.echo("\n".join(["# before", report.before, "# after", report.after]))
    click.echo("# summary")
    for line in report.summary_lines():
        click.echo(line)


def layer_table(net) -> str:
    """``net.summary()`` where the model has one, else a table of its layers."""
    summary = getattr(net, "summary", None)
    if callable(summary):
        text = summary()
        return str(text) if text is not None else ""
    rows = [("layer", "type", "outputs", "parameters")]
    for layer, n_in in zip(net.layers, net.input_widths()):
        count = sum(net.params[name].size for name in net.params
                    if name.startswith(f"{layer.name}."))
        rows.append((layer.name, type(layer).__name__, str(layer.out_features(n_in)),
                     str(count)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"{net!r}"] + ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                            for row in rows]
    total = sum(value.size for value in net.params.values())
    return "\n".join(lines + [f"{total} parameters ({np.dtype(net.dtype).name})"])


# ---------------------------------------------------------------- export

@cli.command(epilog=examples("dlc export model.dlc -o out/",
                             "dlc export model.dlc -o out/ --name digits --weights file",
                             "dlc export model.dlc -o out/ --name digits --target cortex-m4"))
@MODEL
@click.option("-o", "--output", "directory", required=True,
              type=click.Path(file_okay=False), help="Directory for NAME.h and NAME.c.")
@click.option("--name", default="model", show_default=True,
              help="Prefix of the C symbols and file names.")
@click.option("--weights", type=click.Choice(["embedded", "file"]), default="embedded",
              show_default=True, help="Bake the weights into NAME.c or write NAME.weights.")
@click.option("--target", default="host", show_default=True, help=TARGET_HELP)
def export(model, directory, name, weights, target):
    """Write the model as standalone C99 (no malloc, only libm)."""
    try:
        check_name(name)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None
    checked_target(target)
    exported = export_c(load_model(model), directory, name=name, weights=weights,
                        target=target)
    for path in (exported.header, exported.source, exported.weights):
        if path is not None:
            click.echo(f"wrote {path}")
    click.echo(f"{exported.n_inputs} inputs -> {exported.n_outputs} outputs; workspace "
               f"{exported.workspace_bytes} bytes, weights {exported.weights_bytes} bytes")
    if exported.footprint:
        for line in exported.footprint.summary_lines():
            click.echo(f"{target}: {line}")


# ---------------------------------------------------------------- compile

@cli.command("compile", epilog=examples("dlc compile model.dlc",
                                        "dlc compile model.dlc --flags portable"))
@MODEL
@click.option("--flags", type=click.Choice(sorted(FLAG_PRESETS)), default="native",
              show_default=True, help="Compiler flag preset.")
def compile_command(model, flags):
    """Build the model's inference library into the cache (later loads are instant)."""
    net = load_model(model)
    before = set(cache_entries())
    if interactive():
        click.echo(f"compiling {model} ...", err=True)
    start = time.perf_counter()
    compile_model(net, flags=flags)
    seconds = time.perf_counter() - start
    built = len(set(cache_entries()) - before)
    what = (f"built {built} new cache entr{'y' if built == 1 else 'ies'}" if built
            else "already in the cache")
    click.echo(f"{model}: {what} ({seconds:.2f} s); cache {cache_dir()}")


# ---------------------------------------------------------------- prebuild

@cli.command(epilog=examples("dlc prebuild", "dlc prebuild --dtype float32"))
@click.option("--dtype", "dtypes", type=click.Choice(["float32", "float64"]), multiple=True,
              help="The runner's dtype (repeatable; default both).")
@click.option("--flags", type=click.Choice(sorted(FLAG_PRESETS)), default="native",
              show_default=True, help="Compiler flag preset.")
def prebuild(dtypes, flags):
    """Build the runner, the C that runs every trainer of backend="runner" and every
    dlc.tune trial, into the cache: once per machine, compiler and flag preset."""
    before = set(cache_modules())
    if interactive():
        click.echo("building the runner ...", err=True)
    seconds = build_runner(dtypes or RUNNER_DTYPES, flags=flags)
    built = len(set(cache_modules()) - before)
    timing = ", ".join(f"{code} {s:.2f} s" for code, s in seconds.items())
    what = f"built {built} new module{'s' * (built != 1)}" if built else "already in the cache"
    click.echo(f"runner ({flags}): {what} ({timing}); cache {cache_dir()}")


# ---------------------------------------------------------------- predict

@cli.command(epilog=examples("dlc predict model.dlc rows.csv",
                             "dlc predict model.dlc rows.npy -o outputs.npy",
                             "dlc predict model.dlc rows.csv --classes"))
@MODEL
@click.argument("rows", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the outputs to a .csv or .npy file instead of printing them.")
@click.option("--classes", is_flag=True, help="Print the argmax of each row, not the outputs.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
def predict(model, rows, output, classes, threads):
    """Run ROWS (.csv, one example per line, or a 2-D .npy) through the compiled model."""
    if Path(rows).suffix not in ROWS_SUFFIXES:
        raise click.BadParameter(f"{rows!r} should end in .csv or .npy", param_hint="ROWS")
    if output is not None and Path(output).suffix not in ROWS_SUFFIXES:
        raise click.BadParameter(f"{output!r} should end in .csv or .npy",
                                 param_hint="--output")
    net = load_model(model)
    try:
        Y = compile_model(net, threads=threads).predict(read_rows(rows))
    except (TypeError, ValueError) as exc:      # unreadable rows, wrong width, NaN
        raise JobFailed(f"{rows}: {one_line(exc)}") from exc
    if isinstance(Y, tuple):        # several outputs: side by side, as the export's y
        if classes:
            raise JobFailed(f"{model}: --classes needs a model with one output, this one "
                            f"has {len(Y)}")
        Y = np.concatenate(Y, axis=1)
    result = Y.argmax(axis=1) if classes else Y
    if output is None:
        np.savetxt(sys.stdout, result.reshape(len(result), -1), fmt=number_format(result),
                   delimiter=",")
    elif output.endswith(".npy"):
        np.save(output, result)
    else:
        np.savetxt(output, result.reshape(len(result), -1), fmt=number_format(result),
                   delimiter=",")


def read_rows(path: str) -> np.ndarray:
    """A .npy array, or CSV rows of numbers (a first line that is not numbers is a header)."""
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    with open(path) as f:
        first = f.readline()
    try:
        [float(cell) for cell in first.split(",")]
        header = 0
    except ValueError:
        header = 1
    return np.loadtxt(path, delimiter=",", ndmin=2, skiprows=header)


def number_format(values: np.ndarray) -> str:
    """Enough digits to read the values back exactly."""
    if values.dtype.kind in "iu":
        return "%d"
    return "%.9g" if values.dtype == np.float32 else "%.17g"


# ---------------------------------------------------------------- bench

@cli.command(epilog=examples("dlc bench model.dlc", "dlc bench model.dlc --batch 1,64,1024",
                             "dlc bench model.dlc --batch 256 --threads 2"))
@MODEL
@click.option("--batch", "batches", default="1,256", show_default=True,
              help="Comma-separated batch sizes.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--repeat", type=click.IntRange(min=1), default=50, show_default=True,
              help="Timed calls per batch size (the median is reported).")
def bench(model, batches, threads, repeat):
    """Time predict through the compiled library: latency and samples per second."""
    sizes = parse_batches(batches)
    net = load_model(model)
    lib = compile_model(net, threads=threads)
    rng = np.random.default_rng(0)
    from tqdm.auto import tqdm
    results = []
    with tqdm(total=len(sizes) * repeat, unit="call", desc="bench",
              disable=not interactive()) as bar:
        for batch in sizes:
            X = rng.standard_normal((batch, net.n_inputs)).astype(net.dtype)
            lib.predict(X)
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                lib.predict(X)
                times.append(time.perf_counter() - start)
                bar.update(1)
            results.append((batch, float(np.median(times))))
    click.echo(f"{'batch':>7}  {'latency':>12}  {'samples/s':>12}  (threads {threads}, "
               f"median of {repeat})")
    for batch, seconds in results:
        click.echo(f"{batch:>7}  {seconds * 1e6:>9.1f} us  {batch / seconds:>12.4g}")


def parse_batches(text: str) -> list:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise click.BadParameter(f"{text!r} is not a list of positive integers such as 1,256",
                                 param_hint="--batch")
    return sizes


# ---------------------------------------------------------------- ONNX

@cli.command("from-onnx", epilog=examples("dlc from-onnx mlp.onnx -o model.dlc",
                                          "dlc from-onnx mlp.onnx -o model.dlc && "
                                          "dlc export model.dlc -o out/"))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The checkpoint to write (read it back with dlc.load).")
def from_onnx_command(file, output):
    """Import an ONNX model (from PyTorch or elsewhere) as a dlc model checkpoint."""
    net = from_onnx(file)
    save(net, output)
    click.echo(f"wrote {output}: {net.n_inputs} inputs -> {net.n_outputs} outputs, "
               f"{len(net.layers)} layers")


@cli.command("to-onnx", epilog=examples("dlc to-onnx model.dlc -o model.onnx",
                                        "dlc to-onnx model.dlc -o model.onnx --opset 13 --folded"))
@MODEL
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The .onnx file to write.")
@click.option("--opset", type=click.IntRange(min=9), default=17, show_default=True)
@click.option("--folded", is_flag=True,
              help="Write the graph after dlc's inference passes (batch norm folded, ...).")
def to_onnx_command(model, output, opset, folded):
    """Write the model's inference graph as ONNX (checked with onnx.checker)."""
    to_onnx(load_model(model), output, opset=opset, folded=folded)
    click.echo(f"wrote {output} (opset {opset})")


# ---------------------------------------------------------------- demo

@cli.command(epilog=examples("dlc demo", "dlc demo --out out/ --epochs 50"))
@click.option("--out", default="out", show_default=True, type=click.Path(file_okay=False),
              help="Directory for the learning curves and the exported C.")
@click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True,
              help="At most this many epochs.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def demo(out, epochs, seed):
    """The digits demo: train in C, diagnose, export C, build and run it (needs
    scikit-learn, matplotlib, a C compiler and make)."""
    script = EXAMPLES / "digits.py"
    if not script.is_file():
        raise JobFailed("the digits demo is examples/digits.py of a dlc source checkout, "
                        "which this installation does not include")
    spec = importlib.util.spec_from_file_location("dlc_digits_demo", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--out", out, "--epochs", str(epochs), "--seed", str(seed)]
    module.main(argv if interactive() else argv + ["--no-progress"])


# ---------------------------------------------------------------- cache

@cli.group(epilog=examples("dlc cache info", "dlc cache clear", "dlc cache prune 200000000"))
def cache():
    """The build cache ($DLC_CACHE_DIR, else $XDG_CACHE_HOME/dlc, else ~/.cache/dlc)."""


def cache_entries() -> list:
    """dlc's own build products in the cache: the compiled modules, unfinished build
    directories and the compiled templates; nothing else there is touched."""
    root = cache_dir()
    if not root.is_dir():
        return []
    return sorted(cache_modules(root) + list(root.glob(".build-*"))
                  + list(root.glob("templates/__jinja2_*.cache")))


def entry_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def size_cap() -> str:
    try:
        cap = max_cache_bytes()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if cap is None:
        return f"none (set ${MAX_BYTES_VARIABLE} to evict the least recently used modules)"
    return f"{cap} bytes (${MAX_BYTES_VARIABLE})"


@cache.command(epilog=examples("dlc cache info"))
def info():
    """Where the cache is, how many entries it holds, their bytes and the size cap."""
    entries = cache_entries()
    modules = [p for p in entries if p.parent.name != "templates" and p.is_file()]
    click.echo(f"cache directory: {cache_dir()}")
    click.echo(f"compiled modules: {len(modules)} ({sum(map(entry_bytes, modules))} bytes)")
    click.echo(f"entries: {len(entries)} ({sum(map(entry_bytes, entries))} bytes)")
    click.echo(f"size cap: {size_cap()}")


@cache.command(epilog=examples("dlc cache clear"))
def clear():
    """Remove dlc's build products from the cache (they are rebuilt when needed)."""
    entries = cache_entries()
    total = sum(map(entry_bytes, entries))
    for path in entries:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    templates = cache_dir() / "templates"
    if templates.is_dir() and not any(templates.iterdir()):
        templates.rmdir()
    click.echo(f"removed {len(entries)} entries ({total} bytes) from {cache_dir()}")


@cache.command(epilog=examples("dlc cache prune 200000000"))
@click.argument("max_bytes", type=click.IntRange(min=0))
def prune(max_bytes):
    """Remove the least recently used compiled modules until the rest take at most
    MAX_BYTES."""
    removed = prune_cache(max_bytes, cache_dir())
    click.echo(f"removed {len(removed)} modules from {cache_dir()}")


def main(argv=None) -> None:
    """The console script ``dlc``."""
    cli.main(args=argv, prog_name="dlc")
