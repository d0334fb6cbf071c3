"""The import graph between stage packages: no circle, no arrow from an earlier stage to a later one.

Stages, in the order of the flow: ingest < labellers, classifier, llm, learning < studio < agreement < gold.
A stage may import the base modules (store, config, errors, jsontext, outputs, progress, status, lazy, the package
root) and earlier stages; base modules import only base modules. `flows`, `loop`, `commands`, `cli` and `api`
(the notebook's surface) compose stages and may import anything. Every import counts, including those inside functions.
Inside a unit, modules import each other without a circle too (a function-level import does not hide one; only an
`if TYPE_CHECKING:` import, which never runs, is left out).
"""

from __future__ import annotations

import ast
from pathlib import Path

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"

STAGE_ORDER = {
    "ingest": 1,
    "labellers": 2,
    "classifier": 2,
    "llm": 2,
    "learning": 2,
    "studio": 3,
    "agreement": 4,
    "findings": 4,
    "gold": 5,
}
# "": the package root (pipeline/__init__.py)
BASE = {
    "store",
    "config",
    "errors",
    "integrity",
    "outputs",
    "progress",
    "status",
    "lazy",
    "plugins",
    "device",
    "jsontext",
    "",
}
EXEMPT = {"flows", "commands", "cli", "loop", "api"}  # loop: the live model server runs flows.retrain


def unit_of(module: str) -> str:
    """The stage or base unit a dotted module name belongs to ('pipeline.llm.run' -> 'llm')."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Every `pipeline...` module imported anywhere in `source` (relative imports resolved)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "pipeline"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "pipeline":
                continue
            if base == "pipeline":  # `from pipeline import llm` imports the package pipeline.llm
                found |= {f"pipeline.{a.name}" for a in node.names}
            else:
                found.add(base)
    return found


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement in `tree`, at any depth, except those under `if TYPE_CHECKING:` (they never run)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}:
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            visit(child)

    visit(tree)
    return found


def module_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """{module: modules it imports at run time}; `from pipeline.x import y` names the module pipeline.x.y where there is
    one, else the package pipeline.x."""
    graph: dict[str, set[str]] = {}
    for module, (source, is_package) in sources.items():
        targets: set[str] = set()
        for node in _runtime_imports(ast.parse(source)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = module.split(".")
                    anchor = parts[: len(parts) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, *([base] if base else [])])
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in sources else base for a in node.names]
            for name in names:
                while name and name not in sources:
                    name = name.rpartition(".")[0]
                if name.split(".")[0] == "pipeline" and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def module_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles between modules outside the exempt units (each found once, from its smallest module)."""
    nodes = {m for m in graph if unit_of(m) not in EXEMPT}
    found: list[list[str]] = []

    def walk(path: list[str], seen: set[str]) -> None:
        for target in sorted(graph.get(path[-1], set()) & nodes):
            if target == path[0]:
                found.append([*path, target])
            elif target not in seen and target > path[0]:
                seen.add(target)
                walk([*path, target], seen)

    for start in sorted(nodes):
        walk([start], set())
    return found


def unit_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """{unit: units it imports}, from {module name: (source, is package)}."""
    units = {unit_of(m) for m in sources}
    graph: dict[str, set[str]] = {}
    for module, (source, is_package) in sources.items():
        unit = unit_of(module)
        # `from pipeline import __version__` names an attribute of the package root, not a module
        targets = {t if t in units else "" for t in map(unit_of, imported_modules(source, module, is_package))}
        targets.discard(unit)
        graph.setdefault(unit, set()).update(targets)
    return graph


def _level(unit: str) -> int:
    return 0 if unit in BASE else STAGE_ORDER.get(unit, 99)


def backward_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Arrows from a stage to a later stage, or from a base module to any stage."""
    bad = []
    for unit, targets in sorted(graph.items()):
        if unit in EXEMPT:
            continue
        for target in sorted(targets):
            if target in EXEMPT or _level(target) > _level(unit):
                bad.append(f"{unit or 'pipeline'} -> {target}")
    return bad


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles among the units that are not exempt (each found once, from its smallest unit)."""
    nodes = {u for u in graph if u not in EXEMPT}
    found: list[list[str]] = []

    def walk(path: list[str]) -> None:
        for target in sorted(graph.get(path[-1], set()) & nodes):
            if target == path[0]:
                found.append([*path, target])
            elif target not in path and target > path[0]:
                walk([*path, target])

    for start in sorted(nodes):
        walk([start])
    return found


def pipeline_sources() -> dict[str, tuple[str, bool]]:
    sources = {}
    for path in sorted(PIPELINE.rglob("*.py")):
        parts = path.relative_to(PIPELINE.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        sources[name] = (path.read_text(encoding="utf-8"), is_package)
    return sources


def test_stages_import_only_earlier_stages_and_the_base() -> None:
    graph = unit_graph(pipeline_sources())
    assert set(STAGE_ORDER) <= set(graph), "a stage package was renamed: update STAGE_ORDER"
    unknown = set(graph) - set(STAGE_ORDER) - BASE - EXEMPT
    assert not unknown, f"new top-level module(s) {sorted(unknown)}: place them in STAGE_ORDER, BASE or EXEMPT"
    bad = backward_arrows(graph)
    assert not bad, (
        "imports against the flow (move the code into pipeline/flows.py or an earlier stage):\n" + "\n".join(bad)
    )


def test_no_import_circle_between_stages() -> None:
    found = circles(unit_graph(pipeline_sources()))
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_no_import_circle_between_modules() -> None:
    found = module_circles(module_graph(pipeline_sources()))
    assert not found, "import circles between modules (function-level imports included): " + "; ".join(
        " -> ".join(c) for c in found
    )


def test_the_checks_find_backward_arrows_and_circles() -> None:
    sources = {
        "pipeline.classifier.loop": ("from pipeline import studio\nfrom pipeline.store import Store\n", False),
        "pipeline.llm.run": ("def f():\n    from pipeline.classifier import train\n", False),
        "pipeline.classifier": ("from .examples import pick\nfrom pipeline.llm.run import x\n", True),
        "pipeline.classifier.examples": ("", False),
        "pipeline.flows": ("from pipeline.gold import adjudicate\n", False),
        "pipeline.config": ("from pipeline.labellers import registry\n", False),
        "pipeline.gold.card": ("from pipeline import __version__\n", False),
        "pipeline.labellers": ("", True),
        "pipeline.studio": ("", True),
        "pipeline.store": ("", True),
    }
    graph = unit_graph(sources)
    assert graph["classifier"] == {"studio", "store", "llm"} and graph["flows"] == {"gold"}
    assert graph["gold"] == {""}  # the package root
    assert backward_arrows(graph) == ["classifier -> studio", "config -> labellers"]
    assert circles(graph) == [["classifier", "llm", "classifier"]]


def test_the_module_check_sees_circles_behind_function_level_imports() -> None:
    sources = {
        "pipeline.agreement": ("from pipeline.agreement.render import write\n", True),
        "pipeline.agreement.render": ("from pipeline.agreement.versions import table\n", False),
        "pipeline.agreement.versions": ("def table():\n    from pipeline.agreement.render import fmt\n", False),
        "pipeline.agreement.coefficients": ("", False),
        "pipeline.agreement.report": ("from pipeline.agreement import coefficients as co\n", False),
        "pipeline.store.db": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .runs import x\n", False),
        "pipeline.store.runs": ("from pipeline.store.db import Store\n", False),
        "pipeline.flows": ("def f():\n    from pipeline.loop import g\n", False),
        "pipeline.loop": ("def g():\n    from pipeline.flows import f\n", True),
    }
    graph = module_graph(sources)
    assert graph["pipeline.agreement.report"] == {"pipeline.agreement.coefficients"}  # not the package
    assert graph["pipeline.store.db"] == set()  # a TYPE_CHECKING import never runs
    assert module_circles(graph) == [
        ["pipeline.agreement.render", "pipeline.agreement.versions", "pipeline.agreement.render"]
    ]
