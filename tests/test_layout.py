"""The engine's modules import each other one way only: no cycle, even through a deferred import; the result
type and the views know nothing of the algorithms or the app."""

from __future__ import annotations

import ast
from pathlib import Path

import attribot_core

ROOT = Path(attribot_core.__file__).parent
PACKAGE = "attribot_core.runs"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(("attribot_core", *(parts[:-1] if parts[-1] == "__init__" else parts)))


def imports_within(path: Path, modules: set[str]) -> set[str]:
    """Modules of the engine that ``path`` imports anywhere in it (a function-level import counts too:
    deferring an import hides a cycle from Python, not from a reader). ``from . import x`` counts as an
    import of ``x`` only: the package itself is already being imported by then."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else node.module or ""
            names = [f"{base}.{a.name}" for a in node.names]
            found.update(n for n in ([*names] if node.level and not node.module else [base, *names]) if n in modules)
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


def graph_of(prefix: str = "attribot_core") -> dict[str, set[str]]:
    """The import graph of the engine's modules whose names start with ``prefix``."""
    files = sorted(ROOT.rglob("*.py"))
    modules = {module_name(f) for f in files}
    graph = {module_name(f): imports_within(f, modules) for f in files}
    return {name: {d for d in deps if d.startswith(prefix)} for name, deps in graph.items() if name.startswith(prefix)}


def test_the_cycle_finder_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_the_engine_has_no_import_cycle():
    graph = graph_of()
    assert "attribot_core.prefix_attention" in graph["attribot_core.scoring"]  # `from . import x` is seen
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_the_result_type_knows_no_algorithm_and_the_views_no_run_or_scorer():
    graph = graph_of()
    for name in ("attribot_core.result", "attribot_core.validate"):
        assert not {d for d in graph[name] if d.startswith(("attribot_core.methods", "attribot_core.runs",
                                                             "attribot_core.scoring"))}, name
    for name in (n for n in graph if n.startswith("attribot_core.viz")):  # (they order methods as registered)
        assert not {d for d in graph[name] if d.startswith(("attribot_core.runs", "attribot_core.scoring"))}, name


def test_the_run_layer_has_no_import_cycle():
    graph = graph_of(PACKAGE)
    assert f"{PACKAGE}.backends.ray" in graph[f"{PACKAGE}.backends"]  # the scan sees relative imports
    assert f"{PACKAGE}.execute" in graph[f"{PACKAGE}.backends.ray"]  # and parent-relative ones
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_backends_know_nothing_of_the_batch_driver_or_the_app_queue():
    graph = graph_of(PACKAGE)
    for name, deps in graph.items():
        if name.startswith(f"{PACKAGE}.backends"):
            assert not deps & {f"{PACKAGE}.batch", f"{PACKAGE}.app_queue", f"{PACKAGE}.inputs"}, name
