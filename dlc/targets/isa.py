"""The vector ISA of exported C: ``export_c(..., isa=...)``.

"portable" is the C99 code as it is (vectors as wide as the compiler's baseline, SSE2 on
x86-64).  A named level ("x86-64-v3": AVX2+FMA, 256-bit vectors; "x86-64-v4": AVX-512,
512-bit) compiles the kernels for that level under GCC or clang on x86 (a target pragma
around them; the file then runs only on such CPUs), and "native" is the level of the CPU
exporting.  "dispatch" puts the kernels in the file once per level and once portable, each
copy's runtime names suffixed by its level, and picks the widest the CPU runs at the first
prediction (``<name>_set_isa`` forces one).  Everything outside ``#if`` blocks that only
GCC and clang on x86 see stays plain C99.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..runtime import runtime_names, runtime_pieces

ISAS = ("portable", "x86-64-v3", "x86-64-v4", "native", "dispatch")


@dataclass(frozen=True)
class Level:
    name: str
    tag: str            # the suffix of its copy's names under dispatch
    features: str       # GCC/clang target("...")
    vec_bytes: int      # DLC_VEC_BYTES inside it
    vec_regs: int
    cpu_flags: tuple    # what __builtin_cpu_supports and /proc/cpuinfo must both show
    summary: str


V3 = Level("x86-64-v3", "v3", "avx2,fma,bmi,bmi2,f16c,lzcnt,movbe", 32, 16,
           ("avx2", "fma", "bmi", "bmi2"), "AVX2+FMA, 256-bit vectors, 6 x 16 tile")
V4 = Level("x86-64-v4", "v4", "avx512f,avx512bw,avx512cd,avx512dq,avx512vl,"
           "avx2,fma,bmi,bmi2,f16c,lzcnt,movbe", 64, 32,
           ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma"),
           "AVX-512, 512-bit vectors, 14 x 32 tile")
LEVELS = {level.name: level for level in (V3, V4)}
DISPATCHED = (V4, V3)           # tried widest first, then the portable code
CPUINFO_FLAG = {"bmi": "bmi1"}  # where /proc/cpuinfo spells a feature differently
X86_GNUC = "defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))"
ERR_ISA = -16                   # <name>_set_isa: this file or this CPU lacks that ISA


def check_isa(isa) -> str:
    if not isinstance(isa, str):
        raise TypeError(f"isa must be a string, one of {ISAS}, got {type(isa).__name__}")
    if isa not in ISAS:
        raise ValueError(f"isa must be one of {ISAS}, got {isa!r}")
    return isa


def host_level(cpuinfo: str = None) -> str:
    """The widest level this CPU runs ("portable" when none, or not x86)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "portable"
    line = next((l for l in cpuinfo.splitlines() if l.startswith("flags")), "")
    flags = set(line.partition(":")[2].split())
    for level in DISPATCHED:
        if all(CPUINFO_FLAG.get(f, f) in flags for f in level.cpu_flags):
            return level.name
    return "portable"


def apply_isa(header: str, source: str, name: str, isa: str) -> tuple:
    """(header, source) of an export named ``name`` with the kernels for ``isa``."""
    isa = host_level() if check_isa(isa) == "native" else isa
    if isa == "portable":
        return header, source
    macro = name.upper()
    split = runtime_start(source)
    if isa == "dispatch":
        return dispatch_header(header, name, macro), dispatch_source(source, split, name, macro)
    level = LEVELS[isa]
    note = (f"Kernels built for {level.name} ({level.summary}) under GCC or clang on x86: "
            f"the file then runs only on CPUs with it; other compilers build the portable code.")
    body = (source[:split] + region_begin(level, macro, "DLC_") + source[split:]
            + region_end(macro))
    return add_to_header(header, macro, comment(note), ""), body


def runtime_start(source: str) -> int:
    """Where the runtime after dlc_runtime.h (types and bit tests, ISA-neutral) begins."""
    tail = runtime_pieces()[0].items[-1].text
    at = source.find(tail)
    if at < 0:
        raise ValueError("the export's source does not hold dlc_runtime.h as expected")
    return at + len(tail)


def region_begin(level: Level, macro: str, prefix: str) -> str:
    return f"""
/* The kernels below for {level.name}: {level.summary}. */
#if {X86_GNUC}
#define {macro}_ISA_REGION 1
#define {prefix}VEC_BYTES {level.vec_bytes}
#define {prefix}VEC_REGS {level.vec_regs}
#ifdef __clang__
#pragma clang attribute push (__attribute__((target("{level.features}"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("{level.features}")
#pragma GCC optimize("fp-contract=fast")
#endif
#endif
"""


def region_end(macro: str) -> str:
    return f"""
#ifdef {macro}_ISA_REGION
#undef {macro}_ISA_REGION
#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
"""


def comment(text: str) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > 86:
            lines.append(line)
            line = ""
        line = f"{line} {word}" if line else word
    lines.append(line)
    return "/*\n" + "".join(f" * {l}\n" for l in lines) + " */\n"


def add_to_header(header: str, macro: str, note: str, declarations: str) -> str:
    """``header`` with ``note`` and ``declarations`` before its closing extern "C"."""
    end = "#ifdef __cplusplus\n}\n#endif"
    at = header.rfind(end)
    if at < 0:
        raise ValueError(f"the export's header for {macro} has no closing extern \"C\" block")
    return header[:at] + note + declarations + "\n" + header[at:]


# ---------------------------------------------------------------- dispatch

def dispatch_header(header: str, name: str, macro: str) -> str:
    inside = "; ".join(f"{l.name} ({l.summary})" for l in DISPATCHED)
    note = comment(
        f"ISAs inside: {inside}; and portable C99. Under GCC or clang on x86 the first "
        f"prediction picks the widest this CPU runs; {name}_set_isa(\"x86-64-v3\") (or any "
        f"of those names, or \"portable\") forces one, {name}_set_isa(NULL) goes back to the "
        f"automatic choice; {macro}_ERR_ISA when this file or this CPU lacks it. The "
        f"versions agree to rounding (their sums are ordered differently). Other compilers "
        f"build the portable code alone.")
    declarations = (f"#define {macro}_ERR_ISA ({ERR_ISA})    /* ISA not in this file or not "
                    f"on this CPU */\n"
                    f"int {name}_set_isa(const char *isa);\n"
                    f"const char *{name}_isa(void);      /* the ISA predictions run */\n")
    return add_to_header(header, macro, note, declarations)


def forward_span(source: str, name: str) -> tuple:
    """(start, end) of the forward functions (templates/forward.c.j2) in ``source``."""
    start = source.find(f"static void {name}_forward_tile(")
    entry = source.find(f"static void {name}_forward(")
    if start < 0 or entry < 0:
        raise ValueError(f"the export's source has no {name}_forward functions")
    start = source.rfind("\n/*", 0, start) + 1
    return start, source.index("\n}\n", entry) + 3


def shared_names() -> frozenset:
    """The names of dlc_runtime.h (one copy serves every ISA) and the switches a user sets."""
    text = "".join(item.text for item in runtime_pieces()[0].items)
    macros = set(re.findall(r"\bDLC_[A-Z0-9_]+\b", text))
    return frozenset(runtime_names(text) | macros | {"DLC_SCALAR_GEMM"})


def renamed(text: str, tag: str, name: str) -> str:
    """``text`` with its runtime names (but the shared ones) and forward functions tagged."""
    shared = shared_names()

    def rename(match):
        word = match.group(0)
        if word in shared:
            return word
        head, rest = word.split("_", 1)
        return f"{head}_{tag if head == 'dlc' else tag.upper()}_{rest}"
    text = re.sub(r"\b(?:dlc|DLC)_\w+", rename, text)
    return re.sub(rf"\b{name}_(forward\w*)", rf"{name}_\1_{tag}", text)


def dispatch_source(source: str, split: int, name: str, macro: str) -> str:
    start, end = forward_span(source, name)
    runtime = source[split:source.index(f'#include "{name}.h"')]
    copies = []
    for level in DISPATCHED:
        tag = level.tag
        copies.append(region_begin(level, macro, f"DLC_{tag.upper()}_")
                      + renamed(runtime + "\n" + source[start:end], tag, name)
                      + region_end(macro))
    call = f"{name}_forward({name}_params"
    if source.count(call) != 1:
        raise ValueError(f"the export's source does not call {name}_forward once")
    rest = source[end:].replace(call, f"{name}_chosen()({name}_params")
    return (source[:end] + "".join(f"#if {X86_GNUC}\n{c}#endif\n" for c in copies)
            + chooser(name, macro) + rest)


def chooser(name: str, macro: str) -> str:
    fn = f"{name}_forward_fn"
    rows = "".join(f'    {{"{l.name}", {name}_forward_{l.tag}, {name}_has_{l.tag}}},\n'
                   for l in DISPATCHED)
    tests = "".join(
        f"static int {name}_has_{l.tag}(void)\n{{\n    __builtin_cpu_init();\n    return "
        + " && ".join(f'__builtin_cpu_supports("{f}")' for f in l.cpu_flags) + ";\n}\n\n"
        for l in DISPATCHED)
    return f"""
/* The forward pass for each ISA in this file, and the one predictions run: chosen at the
 * first prediction (the widest this CPU runs) or by {name}_set_isa. */
typedef void (*{fn})(const dlc_real *, const dlc_real *, dlc_real *, size_t, dlc_real *,
    const dlc_scratch *);
typedef struct {{
    const char *name;
    {fn} forward;
    int (*runs)(void);
}} {name}_isa_entry;

#if {X86_GNUC}
{tests}#endif
static int {name}_always(void)
{{
    return 1;
}}

static const {name}_isa_entry {name}_isas[] = {{
#if {X86_GNUC}
{rows}#endif
    {{"portable", {name}_forward, {name}_always}},
}};
#define {macro}_N_ISAS (sizeof {name}_isas / sizeof {name}_isas[0])
static const {name}_isa_entry *{name}_current = NULL;

static const {name}_isa_entry *{name}_widest(void)
{{
    size_t i = 0;
    while (!{name}_isas[i].runs()) {{
        i++;        /* the last, portable, always runs */
    }}
    return &{name}_isas[i];
}}

static {fn} {name}_chosen(void)
{{
    if (!{name}_current) {{
        {name}_current = {name}_widest();
    }}
    return {name}_current->forward;
}}

int {name}_set_isa(const char *isa)
{{
    size_t i;
    if (!isa) {{
        {name}_current = {name}_widest();
        return {macro}_OK;
    }}
    for (i = 0; i < {macro}_N_ISAS; i++) {{
        if (strcmp(isa, {name}_isas[i].name) == 0 && {name}_isas[i].runs()) {{
            {name}_current = &{name}_isas[i];
            return {macro}_OK;
        }}
    }}
    return {macro}_ERR_ISA;
}}

const char *{name}_isa(void)
{{
    {name}_chosen();
    return {name}_current->name;
}}

"""
