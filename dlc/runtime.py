"""The hand-written C runtime (runtime/*.h), and the part of it a program calls into.

Each runtime header has an include guard and includes the headers it uses, so it
compiles alone.  A generated file is one translation unit with no runtime headers beside
it: ``runtime_for`` pastes the headers in the order of their ``#include`` graph, with
those includes removed and only the functions the program calls into (and what they
call).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from .render import resource_dir

C_COMMENT = re.compile(r"/\*.*?\*/", re.S)
RUNTIME_NAME = re.compile(r"\bdlc_[a-z0-9_]+\b")
DEFINED_NAME = re.compile(r"\b(dlc_[a-z0-9_]+)\s*[(=]")
LOCAL_INCLUDE = re.compile(r'^#include "([^"]+)"\n', re.M)
BLANK_RUN = re.compile(r"\n{3,}")
BASE = "dlc_runtime.h"      # types and bit tests: pasted first, always


def runtime_names(text: str) -> frozenset:
    """The dlc_ names C text uses, comments aside."""
    return frozenset(RUNTIME_NAME.findall(C_COMMENT.sub("", text)))


@dataclass(frozen=True)
class RuntimeItem:
    """A function or variable of the runtime (with its comment), or the text between them
    (guards, macros, types: name None), which comes whenever its header does."""
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


def header_includes() -> dict:
    """Each runtime header -> the runtime headers it includes."""
    root = resource_dir("runtime")
    return {path.name: tuple(LOCAL_INCLUDE.findall(path.read_text()))
            for path in sorted(root.glob("*.h"))}


def include_order(includes: dict) -> list:
    """The headers with every one after those it includes (depth first, by name)."""
    order, visiting = [], set()

    def visit(name):
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"runtime headers include each other in a cycle through {name}")
        if name not in includes:
            raise ValueError(f"a runtime header includes {name!r}, which runtime/ lacks")
        visiting.add(name)
        for dependency in includes[name]:
            visit(dependency)
        order.append(name)

    for name in [BASE, *includes]:
        visit(name)
    return order


@dataclass(frozen=True)
class Header:
    name: str
    includes: tuple     # positions in runtime_pieces() of the headers it includes
    items: tuple        # its RuntimeItems, its runtime includes removed


@lru_cache(maxsize=1)
def runtime_pieces() -> tuple:
    """The runtime headers in include order."""
    root, includes = resource_dir("runtime"), header_includes()
    order = include_order(includes)
    return tuple(Header(name, tuple(order.index(i) for i in includes[name]),
                        tuple(runtime_items(LOCAL_INCLUDE.sub("", (root / name).read_text()))))
                 for name in order)


def runtime_for(program: str) -> str:
    """The runtime ``program`` (C text without it) calls into, and nothing else: every
    function or variable the program or a chosen item uses, with the rest of its header
    (guard, macros, types); a name no item defines belongs to the first header that uses
    it.  A header comes with the guards, macros and types of those it includes (which
    decide, say, whether vectors exist), in include order; dlc_runtime.h always."""
    headers = runtime_pieces()
    pieces = [header.items for header in headers]
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
        if k is None:       # the header itself: its text between the items
            uses = frozenset().union(*(i.uses for i in pieces[p] if i.name is None))
            wanted.extend((q, None) for q in headers[p].includes)
        else:
            uses = pieces[p][k].uses
            wanted.append((p, None))
        wanted.extend(o for name in uses for o in owners.get(name, ()))
    text = "\n".join(
        "".join(item.text for k, item in enumerate(items)
                if item.name is None or (p, k) in chosen)
        for p, items in enumerate(pieces) if (p, None) in chosen)
    return BLANK_RUN.sub("\n\n", text)       # where items were left out
