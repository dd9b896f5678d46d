"""What the inference pipeline does to a model: IR before and after, and a summary."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from .api import _check_model, source_graph
from .build import BuildError, compiler_command, run_compiler
from .checks import check_int
from .ir import Graph
from .layout import pack_params
from .passes import INFERENCE_PIPELINE, run_pipeline
from .quant import QuantizedModel
from .targets.embedded import ExportTarget
from .targets.export import EXPORT, HOST, export_target, generate_export, target_program

EXPORT_FLAGS = EXPORT.flags


@dataclass(frozen=True)
class CodeSize:
    text: int       # machine code bytes
    rodata: int     # read-only data: the baked weights and other constants
    data: int
    bss: int        # zero-initialised: the internal workspace (and file-loaded weights)


@dataclass(frozen=True)
class Footprint:
    """What an exported model costs on its target, measured on the object file the
    target's compiler builds from it: sections by ``size``, the stack by gcc's
    -fstack-usage through the -fcallgraph-info call graph."""
    command: str        # how the object was built
    text: int           # machine code
    rodata: int         # constants: the weights, when baked in
    data: int
    bss: int
    workspace: int      # the caller's scratch memory the header states
    stack: int          # bytes of the deepest call chain from <name>_predict
    chain: tuple        # that chain, outermost first
    external: tuple     # functions it calls outside the file (libm), whose stack is theirs
    frames: int = 0     # the file's own frames in that chain, all -fstack-usage reports

    @property
    def code(self) -> int:
        return self.text

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def ram(self) -> int:
        return self.workspace + self.data + self.bss

    def summary_lines(self) -> list:
        extra = f" + library calls ({', '.join(self.external)})" if self.external else ""
        return [f"flash bytes: {self.flash} ({self.text} code, {self.rodata} constants, "
                f"{self.data} data)",
                f"RAM bytes: {self.ram} ({self.workspace} workspace, {self.data} data, "
                f"{self.bss} bss)",
                f"stack bytes: {self.stack}{extra}"]


@dataclass(frozen=True)
class Inspection:
    before: str                 # IR text as lowered from the DSL
    after: str                  # IR text after the inference pipeline
    ops_before: Counter
    ops_after: Counter
    param_bytes_before: int
    param_bytes_after: int
    arena_bytes: int            # activations of one tile of tile_rows rows
    arena_values_per_row: int
    tile_rows: int
    block_bytes: int            # the kernels' blocks: packed panels, int8 widened rows
    workspace_bytes: int        # all the scratch memory: the arena, then the blocks
    code_bytes: Optional[int] = None      # .text of the exported C, when measured
    constant_bytes: Optional[int] = None  # .rodata (the baked weights), when measured
    target: str = "host"
    footprint: Optional[Footprint] = None   # flash, RAM and stack on the target, when measured

    @property
    def ops_removed(self) -> dict:
        """op -> how many nodes of it the pipeline removed."""
        return {op: n - self.ops_after[op] for op, n in sorted(self.ops_before.items())
                if n > self.ops_after[op]}

    def summary_lines(self) -> list:
        removed = ", ".join(f"{n} {op}" for op, n in self.ops_removed.items()) or "none"
        lines = [
            f"ops: {sum(self.ops_before.values())} -> {sum(self.ops_after.values())} "
            f"(removed {removed})",
            f"parameter bytes: {self.param_bytes_before} -> {self.param_bytes_after}",
            f"arena bytes: {self.arena_bytes} ({self.arena_values_per_row} values per row, "
            f"tiles of {self.tile_rows} rows)",
            f"workspace bytes: {self.workspace_bytes} (the arena and {self.block_bytes} bytes "
            f"of kernel blocks)",
        ]
        if self.code_bytes is not None:
            lines.append(f"code bytes: {self.code_bytes} text + {self.constant_bytes} constants")
        if self.footprint is not None:
            lines += [f"{self.target}: {line}" for line in self.footprint.summary_lines()]
        return lines

    def __str__(self) -> str:
        return "\n".join(["# before", self.before, "# after", self.after, "# summary",
                          *self.summary_lines()])


def param_bytes(graph: Graph) -> int:
    return sum(p.value.nbytes for p in graph.params.values())


def inspect_graph(graph: Graph, passes=INFERENCE_PIPELINE, tile_rows: int = None,
                  target: ExportTarget = HOST, before: Graph = None):
    """(Inspection, the optimised graph) for an inference graph exported to ``target``;
    ``before``, when given, is what the report compares with (a quantized model's float
    graph)."""
    optimised = run_pipeline(graph, passes)
    graph = graph if before is None else before
    program = target_program(optimised, target, tile_rows)
    report = Inspection(
        before=str(graph), after=str(optimised),
        ops_before=Counter(n.op for n in graph.nodes),
        ops_after=Counter(n.op for n in optimised.nodes),
        param_bytes_before=param_bytes(graph), param_bytes_after=param_bytes(optimised),
        arena_bytes=program.arena_bytes,
        arena_values_per_row=program.arena_elements // program.tile_rows,
        tile_rows=program.tile_rows, block_bytes=program.block_bytes,
        workspace_bytes=program.workspace_bytes, target=target.name)
    return report, optimised


def inspect_model(net, passes=INFERENCE_PIPELINE, tile_rows: int = None,
                  target: ExportTarget = HOST):
    """(Inspection, the optimised graph) of a model; a quantized one is compared with its
    float graph (after the inference passes), so the parameter bytes show the int8 saving."""
    return inspect_graph(source_graph(net), passes, tile_rows, target,
                         before=net.float_graph if isinstance(net, QuantizedModel) else None)


def inspect(net, passes=INFERENCE_PIPELINE, *, tile_rows: int = None, code_size: bool = False,
            cc=None, target: str = "host", footprint: bool = None) -> Inspection:
    """The IR of ``net`` before and after the inference passes, and a summary: ops
    removed, parameter bytes, arena bytes and, with ``code_size=True`` (which compiles
    the exported C), the code and constant bytes.  For ``target`` (see dlc.export_c),
    ``footprint=True`` (the default for every target but "host") builds the export with
    the target's compiler and states its flash, RAM and stack (``.footprint``)."""
    _check_model(net)
    machine = export_target(target)
    if tile_rows is not None:
        tile_rows = check_int(tile_rows, "tile_rows", low=1)
    footprint = machine.name != "host" if footprint is None else footprint
    report, graph = inspect_model(net, passes, tile_rows, machine)
    if not (code_size or footprint):
        return report
    program = target_program(graph, machine, tile_rows)
    block = pack_params(graph, program.params, np.dtype(net.dtype))
    header, source, _ = generate_export(graph, "model", block, report.summary_lines(),
                                        tile_rows=tile_rows, target=machine)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model.h").write_text(header)
        (Path(tmp) / "model.c").write_text(source)
        if code_size:
            size = measure_code_size(Path(tmp) / "model.c", cc)
            report = replace(report, code_bytes=size.text, constant_bytes=size.rodata)
        if footprint:
            report = replace(report, footprint=measure_footprint(
                Path(tmp) / "model.c", "model", machine, program.workspace_bytes, cc))
    return report


def measure_code_size(source: Path, cc=None, flags=EXPORT_FLAGS) -> CodeSize:
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "model.o"
        run_compiler([*compiler_command(cc), *flags, "-c", str(source), "-o", str(obj)])
        return object_sections(obj)


def measure_footprint(source: Path, name: str, target: ExportTarget, workspace: int,
                      cc=None) -> Footprint:
    """Builds ``source`` (the export of model ``name``) as ``target`` builds it, with
    gcc's stack analysis, and measures its sections and its deepest call chain (through
    the C library's functions too, when the target links static archives)."""
    command = [*compiler_command(target.cc or cc), *target.flags]
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "model.o"
        run_compiler([*command, "-fstack-usage", "-fcallgraph-info=su", "-c", str(source),
                      "-o", str(obj)])
        sections = object_sections(obj, target.size_tool)
        frames, calls = call_graph((Path(tmp) / "model.ci").read_text())
    own = frames
    if target.cc:
        library_frames, library_calls = library_graph(tuple(command))
        frames = {**library_frames, **frames}
        calls = {**library_calls, **calls}
    else:
        frames = host_frames(tuple(command), frames, calls, f"{name}_predict")
    chain = deepest_chain(f"{name}_predict", frames, calls)
    external = sorted(reachable(f"{name}_predict", calls) - set(frames))
    return Footprint(
        command=" ".join([*command, "-c", source.name]), text=sections.text,
        rodata=sections.rodata, data=sections.data, bss=sections.bss, workspace=workspace,
        stack=sum(frames[f] for f in chain), chain=tuple(chain), external=tuple(external),
        frames=sum(own.get(f, 0) for f in chain))


def host_frames(command: tuple, frames: dict, calls: dict, entry: str) -> dict:
    """The frames of a host build: each leaf function of the file's with the red zone it
    may use, and the shared-library functions it reaches with the stack they were
    measured to take."""
    zone = red_zone(command)
    own = {f: size + (zone if not calls.get(f) else 0) for f, size in frames.items()}
    outside = tuple(sorted(reachable(entry, calls) - set(frames)))
    return {**painted_stacks(command, outside), **own}


@lru_cache(maxsize=None)
def red_zone(command: tuple) -> int:
    """Bytes below the stack pointer that the ABI of ``command``'s machine lets a leaf
    function use without moving it (x86-64's 128), which -fstack-usage does not count."""
    machine = subprocess.run([*command[:1], "-dumpmachine"], capture_output=True,
                             text=True).stdout
    return 128 if machine.startswith("x86_64") else 0


# Paints a stack region, calls a function there, and counts the bytes still painted: the
# stack the call took, shared-library frames, the dynamic linker's binding on the first
# call and the red zone included.  `region` is PAINT bytes in a frame of FRAME bytes (its
# .su line), so a call that left n bytes painted took at most FRAME - n.
PAINT_PROBE = r"""
#include <math.h>
#include <stdio.h>
#define PAINT 65536
static volatile double sink;
__attribute__((noinline)) static void paint(void)
{
    volatile unsigned char region[PAINT];
    for (size_t i = 0; i < PAINT; i++) {
        region[i] = 0xa5;
    }
}
__attribute__((noinline)) static size_t painted(void)
{
    volatile unsigned char region[PAINT];
    size_t n = 0;
    while (n < PAINT && region[n] == 0xa5) {
        n++;
    }
    return n;
}
static const double inputs[] = {0.0, -0.0, 1e-40, -1e-40, 1e-30, -1e-30, 1e-8, -1e-8, 1e-3,
    -1e-3, 0.1, -0.1, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 8.0, -8.0, 20.0, -20.0, 80.0, -80.0,
    88.7, -87.4, 89.0, -104.0, 200.0, -200.0, 710.0, -746.0, 1e5, -1e5, 1e30, -1e30,
    1e300, -1e300, HUGE_VAL, -HUGE_VAL, NAN};
int main(void)
{
    size_t least;
#define PROBE(f, T)                                                       \
    least = PAINT;                                                        \
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {       \
        paint();                                                          \
        sink = f((T)inputs[i]);                                           \
        size_t n = painted();                                             \
        least = n < least ? n : least;                                    \
    }                                                                     \
    printf("%s %zu\n", #f, least);
    PROBES
    return 0;
}
"""
# libm functions of one argument the probe can call: (name, argument type).
PROBED = {f"{base}{suffix}": ctype for base in ("exp", "expm1", "log", "log1p", "tanh", "sqrt",
                                                "exp2", "log2", "cosh", "sinh", "erf")
          for suffix, ctype in (("", "double"), ("f", "float"))}


@lru_cache(maxsize=None)
def painted_stacks(command: tuple, functions: tuple) -> dict:
    """{function: stack bytes} of the shared-library functions (libm's) in ``functions``
    that the probe knows, measured by running each over inputs across its range on a
    painted stack, built by ``command`` (the host's compiler and the export's flags)."""
    known = [f for f in functions if f in PROBED]
    measured = paint_measure(command, [(f, PROBED[f]) for f in known]) if known else {}
    return {f: used + BINDING_ALIGNMENT for f, used in measured.items()}


# The dynamic linker saves the vector registers when it binds a function on its first call
# in an area it aligns to 64 bytes: a run sees one alignment of the stack pointer (16 bytes
# apart), another run may take up to 48 bytes more.
BINDING_ALIGNMENT = 64 - 16


def paint_measure(command: tuple, probes: list, prelude: str = "", sources=()) -> dict:
    """{function: stack bytes} of each (function, argument type) in ``probes`` called on a
    painted stack over the probe's inputs, in a program that ``command`` builds from the
    probe (after ``prelude``) and ``sources``."""
    calls = " ".join(f"PROBE({f}, {ctype})" for f, ctype in probes)
    with tempfile.TemporaryDirectory() as tmp:
        source, exe = Path(tmp) / "probe.c", Path(tmp) / "probe"
        source.write_text(prelude + PAINT_PROBE.replace("PROBES", calls))
        run_compiler([*command, "-fstack-usage", str(source), *map(str, sources), "-o",
                      str(exe), "-lm"])
        usage = "".join(su.read_text() for su in Path(tmp).glob("*.su"))
        frame = int(re.search(r":painted\t(\d+)", usage).group(1))
        done = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    least = dict(line.split() for line in done.stdout.splitlines())
    return {f: frame - int(n) for f, n in least.items()}


def reachable(function: str, calls: dict) -> set:
    seen, todo = set(), [function]
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo.extend(calls.get(f, ()))
    return seen - {function}


# What the stack analysis reads in a disassembled Arm archive (objdump -dr): a function's
# label, the instructions that grow its frame, and the relocations of its calls and tail
# calls.
ARM_FUNCTION = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")
ARM_PUSH = re.compile(r"\t(?:push(?:\.w)?|stmdb(?:\.w)?\s+sp!,)\s*\{([^}]*)\}")
ARM_VPUSH = re.compile(r"\t(?:vpush|vstmdb\s+sp!,)\s*\{([^}]*)\}")
ARM_SUB_SP = re.compile(r"\tsub(?:\.w|w)?\s+sp,\s*(?:sp,\s*)?#(\d+)")
ARM_CALL = re.compile(r"\sR_ARM_(?:THM_CALL|THM_JUMP24|THM_JUMP19|CALL|JUMP24)\s+(\S+)")


def register_bytes(registers: str, size: int) -> int:
    """Bytes a push of ``registers`` ("r4, r5, lr" or "d8-d10") stores."""
    total = 0
    for item in registers.split(","):
        first, _, last = item.strip().partition("-")
        total += size * (int(last[1:]) - int(first[1:]) + 1 if last else 1)
    return total


@lru_cache(maxsize=None)
def library_graph(command: tuple) -> tuple:
    """({function: frame bytes}, {function: callees}) of the static libraries a cross
    compiler links (libm, libc, libgcc) for the flags of ``command``, from their
    disassembly: a frame is what the function's pushes and stack adjustments store."""
    objdump = shutil.which(command[0][:-len("gcc")] + "objdump")
    frames, calls = {}, {}
    for archive in library_archives(command) if objdump else ():
        text = subprocess.run([objdump, "-dr", archive], capture_output=True,
                              text=True).stdout
        disassembled_frames(text, frames, calls)
    return frames, calls


def library_archives(command: tuple) -> list:
    """The libm, libc and libgcc archives ``command`` (a cross gcc and its flags) links."""
    def ask(option):
        return subprocess.run([*command, option], capture_output=True, text=True).stdout.strip()

    paths = [ask("-print-file-name=libm.a"), ask("-print-file-name=libc.a"),
             ask("-print-libgcc-file-name")]
    return [path for path in paths if Path(path).is_file()]


def disassembled_frames(text: str, frames: dict, calls: dict) -> None:
    """Adds the frames and calls of the functions of an ``objdump -dr`` listing."""
    function = None
    for line in text.splitlines():
        label = ARM_FUNCTION.match(line)
        if label:
            function = label.group(1)
            frames.setdefault(function, 0)
        elif function is not None:
            frames[function] += frame_growth(line)
            found = ARM_CALL.search(line)
            if found and found.group(1) != function:
                calls.setdefault(function, set()).add(found.group(1))


def frame_growth(line: str) -> int:
    """Bytes the instruction on ``line`` grows the stack by (pushes, sub sp)."""
    found = ARM_PUSH.search(line)
    if found:
        return register_bytes(found.group(1), 4)
    found = ARM_VPUSH.search(line)
    if found:
        registers = found.group(1)
        return register_bytes(registers, 8 if registers.strip().startswith("d") else 4)
    found = ARM_SUB_SP.search(line)
    return int(found.group(1)) if found else 0


def object_sections(obj: Path, size_tool: str = "size") -> CodeSize:
    """The text, rodata, data and bss bytes of an object file, by ``size -A``."""
    tool = shutil.which(size_tool)
    if tool is None:
        raise BuildError(f"measuring code size needs the binutils {size_tool!r} tool")
    done = subprocess.run([tool, "-A", str(obj)], capture_output=True, text=True, check=True)
    sections = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            kind = parts[0].split(".")[1]
            sections[kind] = sections.get(kind, 0) + int(parts[1])
    return CodeSize(sections.get("text", 0), sections.get("rodata", 0),
                    sections.get("data", 0), sections.get("bss", 0))


CI_NODE = re.compile(r'node: \{ title: "([^"]+)" label: "[^"]*\\n(\d+) bytes')
CI_EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')


def call_graph(ci_text: str) -> tuple:
    """({function: frame bytes}, {function: callees}) from gcc's -fcallgraph-info=su."""
    def function(title):        # a static function's title is "file:name"
        return title.rsplit(":", 1)[-1]

    frames = {function(title): int(size) for title, size in CI_NODE.findall(ci_text)}
    calls = {}
    for source, target in CI_EDGE.findall(ci_text):
        calls.setdefault(function(source), set()).add(function(target))
    return frames, calls


def deepest_chain(function: str, frames: dict, calls: dict,
                  active: frozenset = frozenset()) -> list:
    """The call chain from ``function`` with the most stack bytes; functions of unknown
    frame count nothing, and a call back into the chain (recursion in a library) is cut."""
    if function not in frames or function in active:
        return []
    active = active | {function}
    best = max((deepest_chain(callee, frames, calls, active)
                for callee in calls.get(function, ())),
               key=lambda chain: sum(frames[f] for f in chain), default=[])
    return [function, *best]
