"""The house plan, checked: no import cycles, no SQL outside nbjobs/store/, modules of one
responsibility, each with a docstring, and docs/design.md's map matching the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "nbjobs"
MAX_LINES = 500  # "modules stay under ~500 lines"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every nbjobs module `name` imports: at the top, in functions, or for type checking only
    (`from nbjobs import x` counts as importing the module nbjobs.x, not the package)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = name.split(".") if is_package else name.split(".")[:-1]
                base_parts = base_parts[: len(base_parts) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            # Python runs a package's __init__ before any module in it, so importing
            # nbjobs.widgets.ui (or `from nbjobs.widgets import ui`) depends on nbjobs.widgets
            # too. The root package is left out: it only re-exports, lazily (type-only imports
            # for the checkers), and every module would otherwise depend on it.
            while target and target != "nbjobs":
                if target != name:
                    found.add(target)
                target = target.rpartition(".")[0]
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_in_a_cycle_counting_function_level_and_type_only_imports() -> None:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    assert _cycles(graph) == []


#: The layers, lowest first (design.md's module map): a module imports from its own layer and
#: the ones before it. "" is the foundation modules directly in nbjobs/; "top" the package itself.
LAYERS = ("", "store", "calls", "running", "executors", "scheduling", "worker", "widgets", "api")
LAYERS += ("cli", "top")


def _layer(name: str) -> int:
    parts = name.split(".")
    if name in ("nbjobs", "nbjobs.__main__"):
        return LAYERS.index("top")
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else 0


def test_every_import_points_down_the_layers() -> None:
    upward = [
        f"{name} -> {target}"
        for name, path in MODULES.items()
        for target in sorted(_imports(name, path))
        if _layer(target) > _layer(name)
    ]
    assert upward == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


_SQL = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|REPLACE INTO|CREATE|PRAGMA)\b"
    r".*\b(FROM|INTO|SET|TABLE|INDEX|TRIGGER|WHERE|nbjobs_\w+)"
)


def _string_constants(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_sql_outside_the_store_package() -> None:
    outside = {
        name: [s for s in _string_constants(path) if _SQL.search(s)]
        for name, path in MODULES.items()
        if not name.startswith("nbjobs.store")
    }
    assert {name: found for name, found in outside.items() if found} == {}
    uses = [
        name
        for name, path in MODULES.items()
        if not name.startswith("nbjobs.store") and "._sql(" in path.read_text()
    ]
    assert uses == []


def test_the_sql_finder_finds_sql() -> None:
    assert _SQL.search("SELECT id, owner FROM nbjobs_workers")
    assert _SQL.search("UPDATE nbjobs_jobs SET status = ? WHERE id = ?")
    assert not _SQL.search("select a job to delete from the list")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_is_short_and_says_what_it_holds(name: str) -> None:
    path = MODULES[name]
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines"
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f"{path.relative_to(ROOT)} has no module docstring"


def test_the_module_map_in_design_md_matches_the_tree() -> None:
    text = (ROOT / "docs" / "design.md").read_text()
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\s*(nbjobs/[\w/]+\.py)\b", section, re.MULTILINE))
    actual = {str(path.relative_to(ROOT)) for path in MODULES.values()}
    assert sorted(actual - listed) == [], "modules missing from design.md's map"
    assert sorted(listed - actual) == [], "design.md's map lists modules that do not exist"
