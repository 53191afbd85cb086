"""The metadata package keeps definitions apart from assembly: its modules import each other without a cycle."""

from __future__ import annotations

from helpers import imported_modules, package_modules

PACKAGE = "fairsynth.metadata"


def import_graph() -> dict[str, set[str]]:
    """Which metadata module imports which other metadata modules."""
    modules = package_modules(PACKAGE)
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
    assert graph[f"{PACKAGE}.model"] <= {f"{PACKAGE}.schema", f"{PACKAGE}.dataset"}  # the table and dataset schemas


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
