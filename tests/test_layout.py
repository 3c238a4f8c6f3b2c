"""The package's shape: each module a step of the data's path, and no import cycle.

Imports inside functions count too: a cycle hidden in a function still means two
modules that cannot be read, tested or replaced one without the other.
"""
from __future__ import annotations

import ast

from cohort_engine.conf_folder import REPO_ROOT

ENGINE = REPO_ROOT / "lib" / "cohort_engine"


def engine_imports() -> dict[str, set[str]]:
    """Module → the engine's modules it imports (anywhere in its code)."""
    modules = {path.stem for path in ENGINE.glob("*.py")}
    graph = {}
    for path in ENGINE.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cohort_engine."):
                found.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("cohort_engine.")}
        graph[path.stem] = (found & modules) - {path.stem}
    return graph


def a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once explored

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return path[path.index(imported):] + [imported]
            if imported not in state:
                found = visit(imported, path + [imported])
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert a_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_the_engine():
    graph = engine_imports()
    assert {"analysis", "pipeline", "publish", "data_quality"} <= set(graph)
    assert "pipeline" not in graph["analysis"]  # the pipeline hands the analysis what it needs
    assert a_cycle(graph) is None, " → ".join(a_cycle(graph))


def test_every_table_leaves_through_publish():
    # Only publish writes a table file (the generator, a package of its own, writes extracts).
    writers = {path.stem for path in ENGINE.glob("*.py") if ".to_csv(" in path.read_text(encoding="utf-8")}
    assert writers == {"publish"}, writers
