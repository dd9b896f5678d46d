"""Standalone C export: ``export_c(net, "out/", name="digits")`` writes digits.h and
digits.c (and, on request, digits.weights), to compile into any C99 program.

The forward code is the very code of the cffi module (templates/forward.c.j2),
with every symbol prefixed by the model's name, so several models link into one
program.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .api import _check_model
from .checks import check_int
from .inspect import EXPORT_FLAGS, CodeSize, Inspection, inspect_model, measure_code_size
from .layout import inference_layout, pack_params
from .passes import INFERENCE_PIPELINE
from .program import TILE_ROWS
from .targets.export import WEIGHTS_MAGIC, WEIGHTS_VERSION, generate_export

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
             passes=INFERENCE_PIPELINE, tile_rows: int = TILE_ROWS) -> ExportedModel:
    """Write ``name``.h and ``name``.c (C99, no malloc, only standard headers and libm)
    into ``directory``.  ``weights="file"`` writes the parameters to ``name``.weights,
    read by the generated ``name``_load_weights(path), instead of baking them in."""
    _check_model(net)
    check_name(name)
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    tile_rows = check_int(tile_rows, "tile_rows", low=1)
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"export_c directory must be a path (str or os.PathLike), got "
                        f"{type(directory).__name__}")
    inspection, graph = inspect_model(net, passes, tile_rows)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / f"{name}.weights" if weights == "file" else None
    block = pack_params(graph, inference_layout(graph), np.dtype(net.dtype))
    header, source, program = generate_export(
        graph, name, block, inspection.summary_lines(),
        weights_file=weights_path.name if weights_path else None, tile_rows=tile_rows)
    (directory / f"{name}.h").write_text(header)
    (directory / f"{name}.c").write_text(source)
    if weights_path:
        write_weights(weights_path, block)
    return ExportedModel(name, directory / f"{name}.h", directory / f"{name}.c", weights_path,
                         program.n_inputs, program.n_outputs, program.workspace_bytes,
                         program.params.size * block.itemsize + program.constant_bytes,
                         inspection)


def write_weights(path: Path, block: np.ndarray) -> None:
    """The weights file: magic, then version, value size and count as little-endian
    uint32, then the packed values, little-endian."""
    header = np.array([WEIGHTS_VERSION, block.itemsize, block.size], "<u4")
    with open(path, "wb") as f:
        f.write(WEIGHTS_MAGIC.encode("ascii"))
        f.write(header.tobytes())
        f.write(block.astype(block.dtype.newbyteorder("<")).tobytes())
