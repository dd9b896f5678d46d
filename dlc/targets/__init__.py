"""Targets: what a Program becomes.  A target chooses the entry templates, the kernel
template of each call, and the compiler flags it needs; the source carries only the part
of the runtime its own C calls into.  A new target (a microcontroller, int8) is one more
module here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..version import __version__
from ..program import Call, Program
from ..render import render
from ..runtime import runtime_for


@dataclass(frozen=True)
class Target:
    name: str
    header: str                 # the entry templates, in templates/
    source: str
    kernels: Mapping = field(default_factory=dict)     # kernel -> template, where not
                                                       # templates/ops/<kernel>.c.j2
    flags: tuple = ()           # compiler flags the source needs beyond the build's
    packed: Mapping = field(default_factory=dict)      # kernel -> its (operand, packing)
                                                       # pairs, where not Kernel.packed

    def template(self, call: Call) -> str:
        return self.kernels.get(call.kernel, f"ops/{call.kernel}.c.j2")

    def render(self, program: Program, **extra):
        """(header, source) of ``program``; ``extra`` is what the entry templates need
        beyond the program (an export's name and weights)."""
        context = dict(extra, program=program, target=self, version=__version__,
                       ctype=program.ctype, ir_lines=program.ir_lines)
        header = render(self.header, **context)
        return header, render_with_runtime(self.source, header=header, **context)


def render_with_runtime(template: str, **context) -> str:
    """``template`` rendered with the runtime its own C calls into."""
    text = render(template, runtime="", **context)
    return render(template, runtime=runtime_for(text), **context)
