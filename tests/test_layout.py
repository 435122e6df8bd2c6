"""The package layout holds: salesforce/ and emulator/ stand alone, the Singer side has no cycles.

Imports are read with ``ast`` from the source, every one of them: module level, inside
functions and under ``if TYPE_CHECKING:`` alike, since a typing-only import still ties two
modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import target_salesforce_crm

PACKAGE = "target_salesforce_crm"
PACKAGE_DIR = Path(target_salesforce_crm.__file__).parent
STANDALONE = ("salesforce", "emulator")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    base = PACKAGE_DIR.parent / relative
    return base.with_suffix(".py").is_file() or base.is_dir()


MODULES = {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def imported_names(name: str) -> set[str]:
    """Every module ``name`` imports; ``from x import y`` counts as ``x.y`` when y is a module."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if is_module(child) else base)
    return found


def package_imports(name: str) -> set[str]:
    """The package's own modules that ``name`` imports."""
    return {
        imported for imported in imported_names(name)
        if imported in MODULES and imported != name
    }


GRAPH = {name: package_imports(name) for name in MODULES}


def reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_walk_sees_the_package() -> None:
    """Guard against a walk that silently finds nothing (and so passes everything)."""
    assert f"{PACKAGE}.sinks" in GRAPH[f"{PACKAGE}.target"]
    assert f"{PACKAGE}.salesforce.errors" in GRAPH[f"{PACKAGE}.salesforce.client"]
    assert f"{PACKAGE}.emulator.org" in GRAPH[f"{PACKAGE}.emulator.server"]


@pytest.mark.parametrize("subpackage", STANDALONE)
def test_subpackage_imports_nothing_else_from_the_package(subpackage: str) -> None:
    own = f"{PACKAGE}.{subpackage}"
    offenders = {
        f"{name} imports {imported}"
        for name in MODULES
        if name == own or name.startswith(f"{own}.")
        for imported in GRAPH[name]
        if imported != own and not imported.startswith(f"{own}.")
    }
    assert offenders == set()


@pytest.mark.parametrize("subpackage", STANDALONE)
def test_subpackage_knows_nothing_of_singer(subpackage: str) -> None:
    own = f"{PACKAGE}.{subpackage}"
    offenders = {
        f"{name} imports {imported}"
        for name in MODULES
        if name == own or name.startswith(f"{own}.")
        for imported in imported_names(name)
        if imported.split(".")[0] == "singer_sdk"
    }
    assert offenders == set()


def find_cycle(names: set[str]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> list[str] | None:
        if name in visiting:
            return [*visiting[visiting.index(name):], name]
        if name in done:
            return None
        visiting.append(name)
        for nxt in sorted(GRAPH[name] & names):
            cycle = visit(nxt)
            if cycle:
                return cycle
        visiting.pop()
        done.add(name)
        return None

    for name in sorted(names):
        cycle = visit(name)
        if cycle:
            return cycle
    return None


def test_product_imports_have_no_cycle() -> None:
    """The target and salesforce/ (the emulator, a separate program, has its admin and server
    modules name each other for typing)."""
    product = {name for name in MODULES if not name.startswith(f"{PACKAGE}.emulator")}
    cycle = find_cycle(product)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("sinks", "target"),
        ("runtime", "target"),
        ("runtime", "sinks"),
    ],
)
def test_lower_layer_never_reaches_an_upper_one(lower: str, upper: str) -> None:
    """target → sinks → runtime: not even a chain of imports leads back up."""
    assert f"{PACKAGE}.{upper}" not in reachable(f"{PACKAGE}.{lower}")
