"""infra/'s imports point one way: no module, and no subpackage taken as a whole
(infra/resources/, infra/truenas/, infra/charts/, infra/image/), imports itself back
through others. Every infra module (but `__main__`, which runs the CLI) also
imports in a fresh interpreter, in any order.

The graph is read from the source with `ast` (module-level imports; those under
`if TYPE_CHECKING:` never run); `graphlib` names the cycle."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.budget import examples

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(INFRA.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    """The statements that run on import: the top level, into if/try bodies, except
    an `if TYPE_CHECKING:` body."""
    statements, pending = [], list(tree.body)
    while pending:
        node = pending.pop()
        statements.append(node)
        if isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                pending += node.body
            pending += node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody
            for handler in node.handlers:
                pending += handler.body
    return statements


def _imports(name: str, path: Path) -> set[str]:
    """The infra modules `name` imports when it is imported."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _module_level(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    found.add(f"{base}.{alias.name}")
                elif base in MODULES:
                    found.add(base)
    return found - {name}


def _unit(name: str) -> str:
    """A top-level module, or the subpackage a deeper module belongs to."""
    return ".".join(name.split(".")[:2])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(reversed(error.args[1]))   # graphlib lists predecessors first
    return None


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_graph_sees_the_imports_it_should() -> None:
    # A check that reads nothing passes vacuously: pin a few edges known to exist.
    assert "infra.node_credentials" in GRAPH["infra.node"]
    assert "infra.resources.pool" in GRAPH["infra.node"]
    assert "infra.truenas.credentials" in GRAPH["infra.node_credentials"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None


def test_no_infra_module_imports_itself_back() -> None:
    cycle = _cycle(GRAPH)
    assert cycle is None, "import loop: " + " -> ".join(cycle)


# Known, and not this test's to fix: infra/site.py validates `[apps]` with
# infra/charts/catalog.py and settings.py, while charts/deploy.py, render.py and
# validate.py take a Site. No module imports itself back through it; it is the one
# package-level loop left (issue 15 follow-up).
KNOWN_PACKAGE_LOOPS = {("infra.site", "infra.charts")}


def test_no_infra_subpackage_imports_itself_back() -> None:
    units: dict[str, set[str]] = {}
    for name, imported in GRAPH.items():
        units.setdefault(_unit(name), set()).update(_unit(other) for other in imported)
    for unit, imported in units.items():
        imported.discard(unit)
        imported -= {other for known, other in KNOWN_PACKAGE_LOOPS if known == unit}
    cycle = _cycle(units)
    assert cycle is None, "import loop between packages: " + " -> ".join(cycle)


@settings(max_examples=examples(fast=1, deep=3), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(sorted(name for name in MODULES
                                     if not name.endswith("__main__"))))
def test_every_infra_module_imports_in_a_fresh_interpreter_in_any_order(
        order: list[str]) -> None:
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run([sys.executable, "-c", script, *order], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
