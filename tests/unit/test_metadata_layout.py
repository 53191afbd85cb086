"""The metadata package keeps definitions apart from assembly: its modules import each other without a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import fairsynth.metadata

PACKAGE = "fairsynth.metadata"


def metadata_modules() -> dict[str, Path]:
    """Every module of the metadata package (subpackages included), by dotted name."""
    root = Path(fairsynth.metadata.__file__).parent
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        modules[".".join((PACKAGE, *parts))] = path
    return modules


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The known modules a file imports anywhere in it, function bodies included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # from package import module
    return found & known


def import_graph() -> dict[str, set[str]]:
    """Which metadata module imports which other metadata modules."""
    modules = metadata_modules()
    return {name: imported_modules(path, set(modules)) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as the list of modules along it (first repeated at the end), or [] when there is none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return []
        for target in sorted(graph.get(node, ())):
            cycle = visit(target, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return []

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return []


def test_the_metadata_modules_import_each_other_without_a_cycle():
    graph = import_graph()
    assert {f"{PACKAGE}.model", f"{PACKAGE}.crate", f"{PACKAGE}.builder"} <= set(graph)
    assert find_cycle(graph) == []


def test_the_builder_assembles_the_writers_and_the_definitions_import_no_writer():
    graph = import_graph()
    assert {f"{PACKAGE}.crate", f"{PACKAGE}.dome", f"{PACKAGE}.biostudies"} <= graph[f"{PACKAGE}.builder"]
    assert graph[f"{PACKAGE}.model"] <= {f"{PACKAGE}.schema"}


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
