"""Where an exported model runs: the machines ``export_c(..., target=NAME)`` knows, each
with the kernels it renders the program with, how it is built (and so measured) and
the program's shape on it (rows per tile, weight panels, packed blocks or none).

Microcontrollers and the ``generic`` machine take the plain kernels
(runtime/portable.h, templates/embedded/): one tile of one row, weights read in place as
4-column panels in flash, the last as wide as the columns left (a group of panels at
once, in vectors, where the machine has them), no packed blocks, one function per
activation the model uses, a softmax of rolled loops.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

from . import Target

# The plain kernels' weight panels (DLC_PLAIN_PANEL of runtime/portable.h, which the
# export defines): 4 outputs at once, in registers on a microcontroller, one vector of a
# group of panels summed together where there are vector registers; the last panel is
# ragged (program.inference_program), so the flash holds no padding.
PLAIN_PANEL = 4
PLAIN = Target("plain", header="export.h.j2", source="export.c.j2",
               kernels={"dense": "embedded/dense.c.j2", "activation": "embedded/activation.c.j2",
                        "softmax": "embedded/softmax.c.j2", "qdense": "embedded/qdense.c.j2"},
               packed={"qdense": (("W", "int8_quads"),)})

ARM_CC = "arm-none-eabi-gcc"
# ISO C99 turns off contraction: the plain loops ask for it, so that an FPU's
# multiply-accumulate computes each sum (results differ from -ffp-contract=off in the
# last bits, within the float tolerance).
PLAIN_FLAGS = ("-std=c99", "-ffp-contract=fast")


@dataclass(frozen=True)
class ExportTarget:
    name: str
    kernels: Target             # renders the program
    flags: tuple                # how the export is built and measured
    tile_rows: int              # rows per tile by default
    panel: Optional[int] = None  # dense weights' panel width; None: the host's cache line
    packed: bool = True         # whether the matrix multiply packs blocks in the workspace
    cc: Optional[str] = None    # a cross compiler; None: the host's (CC, else cc)
    align: int = 64             # bytes the constant parameter block is aligned to
    about: str = ""
    flash_bytes: Optional[int] = None   # the part's flash and RAM by default (None: no limit)
    ram_bytes: Optional[int] = None

    @property
    def plain(self) -> bool:
        return self.kernels is PLAIN

    @property
    def size_tool(self) -> str:
        return self.cc[:-len("gcc")] + "size" if self.cc else "size"


def cortex_m(core: str, fpu: Optional[str], about: str, flash_kib: int,
             ram_kib: int) -> ExportTarget:
    float_abi = ("-mfpu=" + fpu, "-mfloat-abi=hard") if fpu else ("-mfloat-abi=soft",)
    return ExportTarget(core, PLAIN, (*PLAIN_FLAGS, "-Os", "-mthumb", f"-mcpu={core}",
                                      *float_abi),
                        tile_rows=1, panel=PLAIN_PANEL, packed=False, cc=ARM_CC, align=16,
                        about=about, flash_bytes=flash_kib * 1024, ram_bytes=ram_kib * 1024)


GENERIC = ExportTarget("generic", PLAIN, (*PLAIN_FLAGS, "-O2"), tile_rows=1, panel=PLAIN_PANEL,
                       packed=False, align=16,
                       about="plain loops for any C99 compiler, built here with the host's cc")
# Each core's limits are those of a common part (the example's linker script has the
# Cortex-M4's); export_c(flash_bytes=, ram_bytes=) gives another part's.
CORTEX_M = (
    cortex_m("cortex-m0", None, "Armv6-M, no FPU (float in software)", 32, 8),
    cortex_m("cortex-m4", "fpv4-sp-d16", "Armv7E-M with a single-precision FPU (vfma)", 256, 64),
    cortex_m("cortex-m7", "fpv5-d16", "Armv7E-M with a double-precision FPU", 1024, 256),
)


class PartTooSmall(UserWarning):
    """The measured footprint of an export exceeds the part's flash or RAM."""


class PartTooSmallError(ValueError):
    """The same, raised by export_c(strict=True)."""


def check_fits(footprint, target: ExportTarget, flash_bytes: Optional[int] = None,
               ram_bytes: Optional[int] = None, strict: bool = False) -> None:
    """Warns (raises, with ``strict``) naming the figures when ``footprint`` (as measured
    for ``target``) needs more flash, or more RAM with its stack, than the part has:
    ``flash_bytes`` and ``ram_bytes``, by default the target's."""
    flash = target.flash_bytes if flash_bytes is None else flash_bytes
    ram = target.ram_bytes if ram_bytes is None else ram_bytes
    problems = []
    if flash is not None and footprint.flash > flash:
        problems.append(f"flash {footprint.flash} bytes ({footprint.text} code, "
                        f"{footprint.rodata} constants, {footprint.data} data) > {flash}")
    if ram is not None and footprint.ram + footprint.stack > ram:
        problems.append(f"RAM {footprint.ram + footprint.stack} bytes ({footprint.workspace} "
                        f"workspace, {footprint.data + footprint.bss} data and bss, "
                        f"{footprint.stack} stack) > {ram}")
    if problems:
        message = (f"the model does not fit the {target.name} part: "
                   + "; ".join(problems))
        if strict:
            raise PartTooSmallError(message)
        warnings.warn(message, PartTooSmall, stacklevel=3)
