"""The run layer's modules import each other one way only: no cycle, even through a deferred import."""

from __future__ import annotations

import ast
from pathlib import Path

import attribot_core.runs

RUNS = Path(attribot_core.runs.__file__).parent
PACKAGE = "attribot_core.runs"


def module_name(path: Path) -> str:
    parts = path.relative_to(RUNS).with_suffix("").parts
    return ".".join((PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)))


def imports_within_runs(path: Path, modules: set[str]) -> set[str]:
    """Modules of the run layer that ``path`` imports anywhere in it (a function-level import counts too:
    deferring an import hides a cycle from Python, not from a reader)."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module or ""
            names = [f"{base}.{a.name}" for a in node.names]
            found.update(n for n in [base, *names] if n in modules)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
    return found - {module_name(path)}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as the modules along it), or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def graph_of_runs() -> dict[str, set[str]]:
    files = sorted(RUNS.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports_within_runs(f, modules) for f in files}


def test_the_cycle_finder_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_the_run_layer_has_no_import_cycle():
    graph = graph_of_runs()
    assert f"{PACKAGE}.backends.ray" in graph[f"{PACKAGE}.backends"]  # the scan sees relative imports
    assert f"{PACKAGE}.execute" in graph[f"{PACKAGE}.backends.ray"]  # and parent-relative ones
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_backends_know_nothing_of_the_batch_driver_or_the_app_queue():
    graph = graph_of_runs()
    for name, deps in graph.items():
        if name.startswith(f"{PACKAGE}.backends"):
            assert not deps & {f"{PACKAGE}.batch", f"{PACKAGE}.app_queue", f"{PACKAGE}.inputs"}, name
