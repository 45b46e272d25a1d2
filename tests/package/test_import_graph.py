"""Import structure: every subpackage imports on its own in a fresh interpreter, the static import graph of
``src/elue_hf`` has no cycle between modules, and imports between the top-level parts of the package go one way.

The graph counts every ``import elue_hf...`` / ``from . import ...`` / ``from ..x import y`` statement, at module level
and inside functions alike (a deferred import still ties the two modules together). ``from pkg import name`` counts as
an edge to ``pkg.name`` when that is a module, else to ``pkg``.

Between top-level parts (``elue_hf.<part>``: a subpackage such as ``elasticbert`` or ``elue``, or a module such as
``finetune`` or ``cli``; the root ``elue_hf/__init__.py`` is the facade that wires them together and is left out) the
rule is: no two parts import each other, ever, and a longer loop is allowed only while it is listed in
``KNOWN_PACKAGE_CYCLES``. docs/development.md, "Import direction", gives the layers: shared helpers
(``multi_exit``, ``tokenizer_io``, ``outputs``, ...) <- model packages (``elasticbert`` <- ``multiexit``, ``hashee``,
``lpt``) <- ``elue`` <- ``methods`` (ELUE's HashEE/LPT adapters) <- applications (``finetune``, ``verify``,
``leaderboard``, ``hub``, ``deploy``, ``demo``, ``spaces``, ``commands``, ``cli``); ElasticBERT's Trainer metrics
and pipeline read ELUE's metric and FLOPs rules, so ``elasticbert`` -> ``elue`` is allowed and ``elue`` never imports
``elasticbert`` (it takes a model's early-exit rule from the model object).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "elue_hf"

#: loops between top-level parts still present (no two parts import each other; see the module docstring), each to be
#: broken; the test fails when one disappears (remove it here) or a new one appears (break it).
KNOWN_PACKAGE_CYCLES: set[frozenset[str]] = set()


def modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _targets(name: str, is_package: bool, node, known) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "elue_hf"]
    if node.level:
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    elif (node.module or "").split(".")[0] == "elue_hf":
        target = node.module
    else:
        return []
    return [f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {name: set() for name in known}
    for name, (path, is_package) in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(name, is_package, node, known):
                    while target not in known and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target in known and target != name:
                        graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], set(), 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(frozenset(component))
    return found


def test_cycle_finder():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == {frozenset("abc")}


def test_the_import_graph_has_no_cycles():
    found = cycles(import_graph())
    assert not found, f"import cycles between modules: {[sorted(c) for c in found]}"


def part_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded onto top-level parts (``elue_hf.<part>...`` -> ``<part>``), the root package left out."""
    def part(name: str) -> str | None:
        pieces = name.split(".")
        return pieces[1] if len(pieces) > 1 else None

    parts: dict[str, set[str]] = {}
    for name, targets in graph.items():
        if part(name) is None:
            continue
        parts.setdefault(part(name), set())
        for target in targets:
            if part(target) not in (None, part(name)):
                parts[part(name)].add(part(target))
    return parts


def mutual_pairs(parts: dict[str, set[str]]) -> list[tuple[str, str]]:
    return [(a, b) for a in sorted(parts) for b in sorted(parts[a]) if a < b and a in parts.get(b, ())]


def _edges_between(graph, a: str, b: str) -> list[str]:
    return sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts
                  if m.split(".")[1:2] == [a] and t.split(".")[1:2] == [b])


def test_no_two_top_level_parts_import_each_other():
    graph = import_graph()
    mutual = mutual_pairs(part_graph(graph))
    assert not mutual, "parts importing each other: " + "; ".join(
        f"{a} <-> {b}: {_edges_between(graph, a, b)} / {_edges_between(graph, b, a)}" for a, b in mutual)


def test_top_level_parts_have_no_new_loops():
    found = cycles(part_graph(import_graph()))
    new = [sorted(c) for c in found - KNOWN_PACKAGE_CYCLES]
    gone = [sorted(c) for c in KNOWN_PACKAGE_CYCLES - found]
    assert not new, f"new loops between top-level parts: {new}"
    assert not gone, f"these loops are broken: remove them from KNOWN_PACKAGE_CYCLES: {gone}"


def test_part_graph_folds_modules_onto_parts():
    graph = {"elue_hf": {"elue_hf.a"}, "elue_hf.a.x": {"elue_hf.a.y", "elue_hf.b"}, "elue_hf.a.y": set(),
             "elue_hf.b": {"elue_hf"}}
    assert part_graph(graph) == {"a": {"b"}, "b": set()}
    assert mutual_pairs({"a": {"b", "c"}, "b": {"a"}, "c": set()}) == [("a", "b")]


def test_elue_layers_flow_one_way():
    """elue/__init__.py: tasks/data -> flops -> submission -> score; nothing lower imports a higher layer."""
    order = ["tasks", "data", "flops", "submission", "score"]
    graph = import_graph()
    wrong = []
    for name, targets in graph.items():
        parts = name.split(".")
        if parts[:2] != ["elue_hf", "elue"] or len(parts) < 3 or parts[2] not in order:
            continue
        for target in targets:
            tparts = target.split(".")
            if tparts[:2] == ["elue_hf", "elue"] and len(tparts) > 2 and tparts[2] in order:
                if order.index(tparts[2]) > order.index(parts[2]):
                    wrong.append(f"{name} -> {target}")
    assert not wrong, wrong


SUBPACKAGES = sorted(name for name, (_, is_package) in modules().items() if is_package)


@pytest.mark.slow
@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_imports_in_a_fresh_interpreter(name):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, env=env,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
