"""Where an exported model runs: the machines ``export_c(..., target=NAME)`` knows, each
with the kernels it renders the program with, how it is built (and so measured) and
the program's shape on it (rows per tile, weight panels, packed blocks or none).

Microcontrollers and the ``generic`` machine take the plain kernels
(runtime/portable.h, templates/embedded/): one tile of one row, weights read in place as
4-column panels in flash (a group of panels at once, in vectors, where the machine has
them), no packed blocks, one function per activation the model uses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import Target

# The plain kernels' weight panels (DLC_PLAIN_PANEL of runtime/portable.h, which the
# export defines): 4 outputs at once, in registers on a microcontroller, one vector of a
# group of panels summed together where there are vector registers.
PLAIN_PANEL = 4
PLAIN = Target("plain", header="export.h.j2", source="export.c.j2",
               kernels={"dense": "embedded/dense.c.j2", "activation": "embedded/activation.c.j2",
                        "softmax": "embedded/softmax.c.j2"})

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

    @property
    def plain(self) -> bool:
        return self.kernels is PLAIN

    @property
    def size_tool(self) -> str:
        return self.cc[:-len("gcc")] + "size" if self.cc else "size"


def cortex_m(core: str, fpu: Optional[str], about: str) -> ExportTarget:
    float_abi = ("-mfpu=" + fpu, "-mfloat-abi=hard") if fpu else ("-mfloat-abi=soft",)
    return ExportTarget(core, PLAIN, (*PLAIN_FLAGS, "-Os", "-mthumb", f"-mcpu={core}",
                                      *float_abi),
                        tile_rows=1, panel=PLAIN_PANEL, packed=False, cc=ARM_CC, align=16,
                        about=about)


GENERIC = ExportTarget("generic", PLAIN, (*PLAIN_FLAGS, "-O2"), tile_rows=1, panel=PLAIN_PANEL,
                       packed=False, align=16,
                       about="plain loops for any C99 compiler, built here with the host's cc")
CORTEX_M = (
    cortex_m("cortex-m0", None, "Armv6-M, no FPU (float in software)"),
    cortex_m("cortex-m4", "fpv4-sp-d16", "Armv7E-M with a single-precision FPU (vfma)"),
    cortex_m("cortex-m7", "fpv5-d16", "Armv7E-M with a double-precision FPU"),
)
