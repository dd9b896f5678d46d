"""Standalone C export: ``export_c(net, "out/", name="digits")`` writes digits.h and
digits.c (and, on request, digits.weights), to compile into any C99 program.

The forward code is the very code of the cffi module (templates/forward.c.j2),
with every symbol prefixed by the model's name, so several models link into one
program.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from .api import _check_model
from .checks import check_int
from .inspect import (EXPORT_FLAGS, CodeSize, Inspection, inspect_model, measure_code_size,
                      measure_footprint)
from .ir import DTYPES
from .layout import pack_params
from .passes import INFERENCE_PIPELINE
from .targets.export import (TARGETS, WEIGHTS_MAGIC, WEIGHTS_VERSION, export_target,
                             generate_export, target_program)
from .targets.embedded import PartTooSmall, PartTooSmallError, check_fits  # noqa: F401
from .targets.isa import check_isa

WEIGHTS = ("embedded", "file")
C_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic
    _Imaginary _Noreturn _Static_assert _Thread_local bool true false alignas alignof
    static_assert thread_local nullptr typeof typeof_unqual constexpr
""".split())


@dataclass(frozen=True)
class ExportedModel:
    name: str
    header: Path
    source: Path
    weights: Optional[Path]      # the separate weights file, or None when baked in
    n_inputs: int
    n_outputs: int
    workspace_bytes: int
    weights_bytes: int
    inspection: Inspection = field(repr=False)
    target: str = "host"
    # A quantized model's integer output (output="int8": int8, or int16 with int16
    # activations) stands for output_scale * (y - output_zero_point); None for floats.
    output_scale: Optional[float] = None
    output_zero_point: Optional[int] = None
    output_dtype: Optional[np.dtype] = None     # y's type when not the model's dtype

    @property
    def footprint(self):
        """Flash, RAM and stack as measured on the target (None when not measured)."""
        return self.inspection.footprint

    def code_size(self, cc=None, flags=EXPORT_FLAGS) -> CodeSize:
        """Compile the exported source to an object file and measure its sections."""
        return measure_code_size(self.source, cc, flags)


def check_name(name) -> str:
    """``name`` when it is usable as the prefix of C identifiers, else a clear error."""
    if not isinstance(name, str):
        raise TypeError(f"export name must be a string, got {type(name).__name__}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"export name {name!r} is not a C identifier "
                         "(letters, digits and '_', not starting with a digit)")
    if name in C_KEYWORDS:
        raise ValueError(f"export name {name!r} is a C keyword")
    if name.startswith("__") or re.match(r"_[A-Z]", name):
        raise ValueError(f"export name {name!r} is reserved in C (leading '__' or '_' + capital)")
    if name.lower() == "dlc" or name.lower().startswith("dlc_"):
        raise ValueError(f"export name {name!r} would clash with the dlc runtime's dlc_ prefix")
    return name


def export_c(net, directory, name: str = "model", *, weights: str = "embedded",
             passes=INFERENCE_PIPELINE, tile_rows: int = None, target: str = "host",
             isa: str = "portable", footprint: bool = None, flash_bytes: int = None,
             ram_bytes: int = None, strict: bool = False) -> ExportedModel:
    """Write ``name``.h and ``name``.c (C99, no malloc, only standard headers and libm)
    into ``directory``.  ``weights="file"`` writes the parameters to ``name``.weights,
    read by the generated ``name``_load_weights(path), instead of baking them in.

    ``target`` is where the code runs: "host" (the default) the library's packed,
    vectorised kernels, tiles of 64 rows; "generic" and the microcontrollers
    "cortex-m0", "cortex-m4", "cortex-m7" plain loops over one row at a time, no packed
    blocks, constant weights read in place.  ``tile_rows`` overrides the target's rows per
    tile.  ``isa`` picks the vector ISA of an x86 build (dlc/targets/isa.py): "portable",
    "x86-64-v3", "x86-64-v4", "native" (this CPU's level) or "dispatch" (all, chosen at
    run time); the plain-loop targets take only "portable".  ``footprint`` (by default on for
    every target but "host") builds the export with the target's compiler and states the
    flash, RAM and stack it measures in the header and in ``.footprint``; when they
    exceed the part's flash or RAM (with the stack) it warns (``PartTooSmall``) naming the
    figures, or raises ``PartTooSmallError`` with ``strict=True``.  ``flash_bytes`` and
    ``ram_bytes`` are the part's, by default the target's (a Cortex-M0 32 KiB and 8 KiB,
    M4 256 and 64, M7 1024 and 256; no limit for generic and host); giving them measures
    the footprint of any target."""
    _check_model(net)
    check_name(name)
    if not isinstance(weights, str) or weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    machine = export_target(target)
    if tile_rows is not None:
        tile_rows = check_int(tile_rows, "tile_rows", low=1)
    if footprint is not None and not isinstance(footprint, bool):
        raise TypeError(f"footprint must be True, False or None, got {footprint!r}")
    limits = part_limits(flash_bytes, ram_bytes, strict, footprint)
    footprint = True if limits and footprint is None else footprint
    check_isa(isa)
    if machine.name != "host" and isa != "portable":
        raise ValueError(f"isa {isa!r} chooses among the host target's vector kernels; "
                         f"target {target!r} takes only isa='portable'")
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"export_c directory must be a path (str or os.PathLike), got "
                        f"{type(directory).__name__}")
    output_quantization = getattr(net, "output_quantization", None)
    if output_quantization and isa == "dispatch":
        raise ValueError("isa='dispatch' exports float outputs only; an int8 output takes "
                         "one ISA")
    inspection, graph = inspect_model(net, passes, tile_rows, machine)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / f"{name}.weights" if weights == "file" else None
    program = target_program(graph, machine, tile_rows)
    block = pack_params(graph, program.params, np.dtype(net.dtype))

    def write(report):
        header, source, _ = generate_export(
            graph, name, block, report.summary_lines(),
            weights_file=weights_path.name if weights_path else None, tile_rows=tile_rows,
            target=machine, isa=isa, footprint=report.footprint,
            output_quantization=output_quantization)
        (directory / f"{name}.h").write_text(header)
        (directory / f"{name}.c").write_text(source)

    write(inspection)
    if machine.name != "host" if footprint is None else footprint:
        # The figures go into the header's comments and unused macros: the object the
        # rewritten header builds is the one measured.
        inspection = replace(inspection, footprint=measure_footprint(
            directory / f"{name}.c", name, machine, program.workspace_bytes))
        write(inspection)
        check_fits(inspection.footprint, machine, flash_bytes, ram_bytes, strict)
    if weights_path:
        write_weights(weights_path, block)
    return ExportedModel(name, directory / f"{name}.h", directory / f"{name}.c", weights_path,
                         program.n_inputs, program.n_outputs, program.workspace_bytes,
                         program.params.size * block.itemsize + program.constant_bytes,
                         inspection, machine.name, *(output_quantization or (None, None)),
                         np.dtype(DTYPES[program.output_dtype]) if program.output_dtype
                         else None)


def part_limits(flash_bytes, ram_bytes, strict, footprint) -> bool:
    """Whether export_c was given a part's limits (checked), which need the footprint."""
    for value, what in ((flash_bytes, "flash_bytes"), (ram_bytes, "ram_bytes")):
        if value is not None:
            check_int(value, what, low=1)
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    given = flash_bytes is not None or ram_bytes is not None
    if given and footprint is False:
        raise ValueError("flash_bytes and ram_bytes are checked against the measured "
                         "footprint: they need footprint=True (or None)")
    return given


def write_weights(path: Path, block: np.ndarray) -> None:
    """The weights file: magic, then version, value size and count as little-endian
    uint32, then the packed values, little-endian."""
    header = np.array([WEIGHTS_VERSION, block.itemsize, block.size], "<u4")
    with open(path, "wb") as f:
        f.write(WEIGHTS_MAGIC.encode("ascii"))
        f.write(header.tobytes())
        f.write(block.astype(block.dtype.newbyteorder("<")).tobytes())
