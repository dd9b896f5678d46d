"""The layering of dlc: its modules import one another without cycles, and only at
module level (an import hidden inside a function is how a cycle hides).

The graph is read from the source with ``ast``, not by importing: every import
statement, at module level or inside a function, absolute (``dlc.x``) or relative
(``.x``, ``..ir``), ``from . import x`` meaning the submodule x when there is one
and the package itself otherwise.  Imports of anything outside dlc (numpy, and the
optional onnx, sklearn, torch, matplotlib, tqdm that load on use) are ignored.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import dlc

ROOT = Path(dlc.__file__).parent
OPTIONAL = ("onnx", "onnxruntime", "sklearn", "torch", "matplotlib", "tqdm")  # loaded on use


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict:
    """dotted name -> path of every module of the dlc package."""
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported(node, name: str, path: Path, known) -> list:
    """The dlc modules an Import or ImportFrom node imports."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = package_of(name, path)
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        # `from pkg import x` imports the submodule pkg.x when there is one, else pkg
        targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                   for alias in node.names]
    found = []
    for target in targets:
        while target and target not in known:    # `import dlc.passes.x.y` -> the module
            target = target.rpartition(".")[0]
        if target and target not in found:
            found.append(target)
    return found


def import_table() -> tuple:
    """({module: set of dlc modules it imports}, [function-local dlc imports])."""
    known = modules()
    graph, local = {}, []
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = {target for node in ast.walk(tree)
                       if isinstance(node, (ast.Import, ast.ImportFrom))
                       for target in imported(node, name, path, known) if target != name}
        local += local_imports(tree, name, path, known)
    return graph, local


def local_imports(tree, name: str, path: Path, known) -> list:
    """'module:line (function) imports target' for each dlc import inside a function."""
    found = []
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found += [f"{name}:{node.lineno} ({function.name}) imports {target}"
                              for target in imported(node, name, path, known)]
    return sorted(set(found))


def cycles(graph: dict) -> list:
    """The import cycles: for every strongly connected component of more than one
    module, a shortest cycle through each of its modules (rotations counted once),
    e.g. ['dlc.api', 'dlc.train', 'dlc.api']."""
    found = []
    for component in components(graph):
        seen = set()
        for start in sorted(component):
            cycle = shortest_cycle(graph, component, start)
            key = frozenset(zip(cycle, cycle[1:]))
            if key not in seen:
                seen.add(key)
                found.append(cycle)
    return found


def components(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def shortest_cycle(graph: dict, component: set, start: str) -> list:
    """A shortest path from ``start`` back to itself inside ``component`` (breadth first)."""
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for w in sorted(graph[path[-1]] & component):
            if w == start:
                return path + [start]
            if w not in seen:
                seen.add(w)
                paths.append(path + [w])
    raise AssertionError(f"{start} is on no cycle of its component")


# ---------------------------------------------------------------- the checker itself

def test_the_checker_finds_cycles_and_only_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
    found = cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}})
    assert sorted(found) == [["a", "b", "a"], ["c", "d", "c"]]
    # two cycles sharing a module are both reported
    found = cycles({"a": {"b", "c"}, "b": {"a"}, "c": {"a"}})
    assert sorted(found) == [["a", "b", "a"], ["c", "a", "c"]]


KNOWN = {"dlc": ROOT / "__init__.py", "dlc.ir": ROOT / "ir.py", "dlc.dsl": ROOT / "dsl.py",
         "dlc.passes": ROOT / "passes" / "__init__.py",
         "dlc.passes.rewrite": ROOT / "passes" / "rewrite.py",
         "dlc.passes.fold_batchnorm": ROOT / "passes" / "fold_batchnorm.py"}


def imports_of(line: str, module: str) -> list:
    node, = ast.parse(line).body
    if isinstance(node, ast.FunctionDef):
        node, = node.body
    return imported(node, module, KNOWN[module], KNOWN)


@pytest.mark.parametrize("line, module, expected", [
    ("import dlc.ir", "dlc.dsl", ["dlc.ir"]),
    ("import dlc.passes.rewrite.re", "dlc.dsl", ["dlc.passes.rewrite"]),
    ("from dlc.ir import Graph", "dlc.dsl", ["dlc.ir"]),
    ("from . import dsl, __version__", "dlc.ir", ["dlc.dsl", "dlc"]),
    ("from .passes import fold_batchnorm", "dlc.dsl", ["dlc.passes.fold_batchnorm"]),
    ("from .passes import run_pipeline", "dlc.dsl", ["dlc.passes"]),
    ("from .rewrite import sole_user", "dlc.passes.fold_batchnorm", ["dlc.passes.rewrite"]),
    ("from . import rewrite", "dlc.passes", ["dlc.passes.rewrite"]),
    ("from ..ir import Graph", "dlc.passes.rewrite", ["dlc.ir"]),
    ("from .. import dsl", "dlc.passes.rewrite", ["dlc.dsl"]),
    ("import numpy as np", "dlc.dsl", []),
    ("from numbers import Integral", "dlc.dsl", []),
    ("def f():\n    from .ir import Graph", "dlc.dsl", ["dlc.ir"]),
])
def test_the_checker_reads_every_form_of_import(line, module, expected):
    assert imports_of(line, module) == expected


def test_the_checker_sees_function_local_imports():
    tree = ast.parse("import numpy\ndef f():\n    import tqdm\n    from .api import compile\n")
    assert local_imports(tree, "dlc.dsl", ROOT / "dsl.py", {"dlc.api": None}) == \
        ["dlc.dsl:4 (f) imports dlc.api"]


def test_the_graph_holds_the_known_layers():
    graph, _ = import_table()
    assert "dlc.ops" in graph["dlc.verify"] and "dlc.ir" in graph["dlc.lower"]
    assert "dlc.passes.rewrite" in graph["dlc.passes.fold_batchnorm"]


# ---------------------------------------------------------------- dlc

def test_dlc_imports_form_no_cycle():
    graph, _ = import_table()
    found = cycles(graph)
    assert not found, "import cycles in dlc:\n" + "\n".join(" -> ".join(c) for c in found)


def test_dlc_modules_import_dlc_modules_only_at_module_level():
    """Save the modules that wrap an optional dependency (dlc.sklearn imports
    scikit-learn as it loads), which ``import dlc`` must not load."""
    _, local = import_table()
    wrappers = optional_wrappers()
    hidden = [line for line in local if line.rpartition(" imports ")[2] not in wrappers]
    assert not hidden, "function-local imports of dlc modules:\n" + "\n".join(hidden)


def optional_wrappers() -> set:
    """The dlc modules that import an optional dependency at module level."""
    found = set()
    for name, path in modules().items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            if set(roots) & set(OPTIONAL):
                found.add(name)
    return found


def test_import_dlc_leaves_the_optional_wrappers_out():
    """What makes their lazy import legitimate (tests/test_imports.py checks the
    optional dependencies themselves)."""
    wrappers = sorted(optional_wrappers())
    code = f"import sys, dlc; print([m for m in {wrappers!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "dlc.sklearn" in wrappers and out.strip() == "[]"


@pytest.mark.parametrize("low, high", [("dlc.shapes", "dlc.ops"), ("dlc.ops", "dlc.ir"),
                                       ("dlc.dsl", "dlc.lower"), ("dlc.checks", "dlc.dsl"),
                                       ("dlc.library", "dlc.train"), ("dlc.train", "dlc.api"),
                                       ("dlc.train.graph", "dlc.train.trainer"),
                                       ("dlc.train.c_backend", "dlc.train.trainer")])
def test_the_lower_layer_does_not_reach_the_higher(low, high):
    """The data flow reads off the imports: a module never depends on one built on it."""
    graph, _ = import_table()
    reach, todo = set(), [low]
    while todo:
        for w in graph[todo.pop()] - reach:
            reach.add(w)
            todo.append(w)
    assert high not in reach
