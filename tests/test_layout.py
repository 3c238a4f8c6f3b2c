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


def test_every_module_reads_in_one_sitting():
    # No module of the engine (its generator included) is over 500 lines.
    long = {str(path.relative_to(ENGINE)): n for path in ENGINE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}


def test_every_exception_is_declared_in_errors():
    # One exceptions module: an exception class anywhere else is a second place to look.
    from cohort_engine import errors
    raised = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, Exception)}
    elsewhere = []
    for path in ENGINE.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            bases = {getattr(b, "id", getattr(b, "attr", "")) for b in getattr(node, "bases", [])}
            if isinstance(node, ast.ClassDef) and (bases & (raised | {"Exception", "ValueError", "RuntimeError"})):
                elsewhere.append(f"{path.name}:{node.name}")
    assert elsewhere == []


def test_user_errors_exit_two_with_one_line_and_engine_errors_exit_one(monkeypatch, capsys):
    # Every user error (bad input, configuration, lake state) exits 2 with one line naming what
    # is wrong; an engine error, like any other failure, exits 1.
    from cohort_engine import cli, errors
    user = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.UserError)]
    engine = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.EngineError)]
    assert len(user) == 11 and len(engine) == 4  # UserError, EngineError and their subclasses
    for kind, status in [*((c, 2) for c in user), *((c, 1) for c in engine), (KeyError, 1)]:
        def fail(args, environ, progress, kind=kind):
            raise kind("gold/cohort: column 'arm'\nsecond line")
        monkeypatch.setitem(cli.COMMANDS, "study", fail)
        assert cli.main(["study", "list"], {}) == status, kind
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "gold/cohort: column 'arm'" in err[0], (kind, err)


def test_the_readme_layout_names_every_module():
    # The README's layout section is where a new maintainer finds a module: none is missing.
    layout = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split("## Layout", 1)[1]
    missing = sorted(p.name for p in ENGINE.glob("*.py") if p.name != "__init__.py" and f"`{p.name}`" not in layout)
    assert missing == []
