"""The layout is a rule, not a habit: dependencies point one way (the import-linter contracts in
pyproject.toml), no module or folder imports itself round a cycle, and channels reach the state
only through the engine, the desk and the hub (docs/architecture.md)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bots", "eval", "retriever", "ingest", "kb")


def test_import_contracts_hold():
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0, "see the broken contract printed above"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_round_a_cycle():
    graph = _graph()
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & graph.modules for m in graph.modules}
    assert _cycles(edges) == []


def test_no_folder_imports_itself_round_a_cycle():
    """Folders at every depth: a module counts as its folder (``bots.desk.sla`` → ``bots.desk``)."""
    graph = _graph()
    folders = {m for m in graph.modules if (ROOT / m.replace(".", "/")).is_dir()}
    for depth in range(1, max(m.count(".") for m in folders) + 2):
        edges: dict[str, set[str]] = defaultdict(set)
        for module in graph.modules:
            for imported in graph.find_modules_directly_imported_by(module) & graph.modules:
                source, target = module.split(".")[:depth], imported.split(".")[:depth]
                # Only between siblings: a folder importing its own parts is no cycle.
                if source != target and source[:-1] == target[:-1]:
                    edges[".".join(source)].add(".".join(target))
        assert _cycles(edges) == [], f"folders at depth {depth}"


def test_channels_never_touch_the_store_directly():
    """They use the engine, its desk, and the store roles the hub hands them (hub.py, the one
    place that hands them over, is the exception)."""
    offenders = []
    for path in sorted((ROOT / "bots" / "channels").rglob("*.py")):
        if path.name == "hub.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bengine\.store\b", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
