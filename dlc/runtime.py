"""The hand-written C runtime (runtime/), and the part of it a program calls into."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .render import resource_dir

# The runtime's pieces in the order they are pasted: each uses only itself and the pieces
# before it.  A program carries only the functions it calls into (see runtime_for).
RUNTIME_PIECES = ("dlc_runtime.h", "threads.c", "finite.c", "gemm.c", "kernels.c",
                  "standardize.c", "rng.h", "train.c")

C_COMMENT = re.compile(r"/\*.*?\*/", re.S)
RUNTIME_NAME = re.compile(r"\bdlc_[a-z0-9_]+\b")
DEFINED_NAME = re.compile(r"\b(dlc_[a-z0-9_]+)\s*[(=]")


def runtime_names(text: str) -> frozenset:
    """The dlc_ names C text uses, comments aside."""
    return frozenset(RUNTIME_NAME.findall(C_COMMENT.sub("", text)))


@dataclass(frozen=True)
class RuntimeItem:
    """A function or variable of the runtime (with its comment), or the text between them
    (macros, types: name None), which comes whenever its piece does."""
    name: str
    text: str
    uses: frozenset


def runtime_items(text: str) -> list:
    """``text`` cut into items: each `static` definition at the start of a line, through
    its closing brace at the start of a line (or its `;`), with the comment just above."""
    lines, items, rest = text.splitlines(keepends=True), [], []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("static "):
            rest.append(lines[i])
            i += 1
            continue
        start = comment_start(rest)
        comment, rest = rest[start:], rest[:start]
        end, braced = i, "{" in lines[i]
        while not (lines[end].rstrip() == "}" if braced else lines[end].rstrip().endswith(";")):
            end += 1
            braced = braced or "{" in lines[end]
        body = "".join(comment + lines[i:end + 1])
        signature = "".join(lines[i:end + 1]).split("{")[0]
        items.append(RuntimeItem(None, "".join(rest), runtime_names("".join(rest))))
        items.append(RuntimeItem(DEFINED_NAME.search(signature).group(1), body,
                                 runtime_names(body)))
        rest, i = [], end + 1
    items.append(RuntimeItem(None, "".join(rest), runtime_names("".join(rest))))
    return items


def comment_start(lines: list) -> int:
    """Where the block comment that ends ``lines`` starts (len(lines) when none does)."""
    k = len(lines) - 1
    if k < 0 or not lines[k].rstrip().endswith("*/"):
        return len(lines)
    while not lines[k].startswith("/*"):
        if k == 0 or not lines[k].startswith(" *"):
            return len(lines)
        k -= 1
    return k


@lru_cache(maxsize=1)
def runtime_pieces() -> tuple:
    """The items of each runtime piece, in RUNTIME_PIECES order."""
    root = resource_dir("runtime")
    return tuple(tuple(runtime_items((root / name).read_text())) for name in RUNTIME_PIECES)


def runtime_for(program: str) -> str:
    """The runtime ``program`` (C text without it) calls into, and nothing else: every
    function or variable the program or a chosen item uses, with the rest of its piece
    (macros, types); a name no item defines belongs to the first piece that uses it.
    Pieces come in order, the first (types) always."""
    pieces = runtime_pieces()
    owners = {}
    for p, items in enumerate(pieces):
        for k, item in enumerate(items):
            if item.name:
                owners.setdefault(item.name, []).append((p, k))
    for p, items in enumerate(pieces):
        for item in items:
            for name in item.uses if item.name is None else ():
                owners.setdefault(name, [(p, None)])
    chosen = set()
    wanted = [(0, None), *[o for name in runtime_names(program) for o in owners.get(name, ())]]
    while wanted:
        p, k = wanted.pop()
        if (p, k) in chosen:
            continue
        chosen.add((p, k))
        if k is None:       # the piece itself: its text between the items
            uses = frozenset().union(*(i.uses for i in pieces[p] if i.name is None))
        else:
            uses = pieces[p][k].uses
            wanted.append((p, None))
        wanted.extend(o for name in uses for o in owners.get(name, ()))
    return "\n".join(
        "".join(item.text for k, item in enumerate(items)
                if item.name is None or (p, k) in chosen)
        for p, items in enumerate(pieces) if (p, None) in chosen)


