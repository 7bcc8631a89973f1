"""The package's public names: each is the object of the module that defines it, imported when
first used, and `import nbjobs` alone loads only what every use needs."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import nbjobs
from nbjobs.moved import MOVED


def _imported_names() -> dict[str, tuple[str, str]]:
    """Each public name `nbjobs/__init__.py` imports, eagerly or for type checkers only,
    with the module and the attribute it comes from: what mypy and IDEs see."""
    body = ast.parse(Path(nbjobs.__file__).read_text()).body
    top = [*body, *(node for test in body if isinstance(test, ast.If) for node in test.body)]
    return {
        alias.asname or alias.name: (node.module or "", alias.name)
        for node in top
        if isinstance(node, ast.ImportFrom) and node.module != "typing"
        for alias in node.names
        if not (alias.asname or alias.name).startswith("_")
    }


def _fresh(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return out.stdout.strip()


def test_the_names_type_checkers_see_are_all_the_public_names() -> None:
    assert sorted(_imported_names()) == sorted(nbjobs.__all__)


@pytest.mark.parametrize("name", sorted(nbjobs.__all__))
def test_each_public_name_is_the_object_of_its_module(name: str) -> None:
    module, attr = _imported_names()[name]
    defined = getattr(importlib.import_module(module), attr)
    assert getattr(nbjobs, name) is defined
    namespace: dict[str, object] = {}
    exec(f"from nbjobs import {name}", namespace)
    assert namespace[name] is defined


def test_import_nbjobs_loads_only_the_errors_the_states_and_the_old_names() -> None:
    code = "import sys, nbjobs; print(sorted(m for m in sys.modules if m.startswith('nbjobs')))"
    assert _fresh(code) == str(["nbjobs", "nbjobs.errors", "nbjobs.moved", "nbjobs.states"])


def test_every_name_resolves_in_a_fresh_interpreter_and_submodules_shadow_none() -> None:
    """`from nbjobs import *` loads every name; importing every subpackage afterwards
    (which sets the package's attributes of their names) leaves the public names alone."""
    packages = [m.name for m in pkgutil.iter_modules(nbjobs.__path__)]
    code = (
        "import importlib, json, nbjobs\n"
        "from nbjobs import *\n"
        f"for m in {packages!r}:\n"
        "    if m not in ('__main__', 'cli'): importlib.import_module('nbjobs.' + m)\n"
        "print(json.dumps({n: type(getattr(nbjobs, n)).__name__ for n in nbjobs.__all__}))"
    )
    kinds = json.loads(_fresh(code))
    assert sorted(kinds) == sorted(nbjobs.__all__)
    assert "module" not in kinds.values()
    assert kinds["progress"] == "function"


def test_no_public_name_is_the_name_of_a_submodule_old_or_new() -> None:
    """A module imported as `nbjobs.X` becomes the package's attribute X: a public name X
    would then be the module (`nbjobs.progress` must stay the function)."""
    modules = {m.name for m in pkgutil.iter_modules(nbjobs.__path__)}
    moved = {old.rpartition(".")[2] for old in MOVED}
    assert modules & set(nbjobs.__all__) == set()
    assert moved & set(nbjobs.__all__) == set()


def test_an_unknown_name_is_an_attribute_error_and_dir_lists_the_public_names() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        nbjobs.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    assert set(nbjobs.__all__) <= set(dir(nbjobs))
    names = json.loads(_fresh("import json, nbjobs; print(json.dumps(dir(nbjobs)))"))
    assert set(nbjobs.__all__) <= set(names)
