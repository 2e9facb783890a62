"""The shape of the code: imports point one way, and there is no import circle.

Every import counts, including those inside functions (they run too) and under TYPE_CHECKING
(they tie the modules together for the reader and the type checker)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from support.servers import PROJECT

pytestmark = pytest.mark.unit

PACKAGES = ("sweeper", "steps", "hydra_plugins")

# Every room may use these two: the one error type, and the text every message is made safe by.
BASE = {"sweeper.errors", "sweeper.safe_text"}
# What each room may import from the project (besides itself and BASE); everything else is refused.
# Read top to bottom it is the tree: plan -> executor (local | argo) -> trial -> tracking -> core.
ALLOWED = {
    "sweeper.safe_text": set(),  # the standard library only
    "sweeper.errors": {"sweeper.safe_text"},
    "sweeper.core": BASE,
    "sweeper.tracking": BASE | {"sweeper.core"},
    "sweeper.trial": BASE | {"sweeper.core", "sweeper.tracking"},
    "steps": BASE | {"sweeper.core", "sweeper.tracking", "sweeper.trial"},
    "sweeper.search": BASE | {"sweeper.core"},  # how a grid is searched: decisions, no fitting
    "sweeper.planning": BASE | {"sweeper.core", "sweeper.search"},
    "sweeper.display": BASE | {"sweeper.core"},
    "sweeper.conclusion": BASE | {"sweeper.core", "sweeper.tracking", "sweeper.trial"},
    "sweeper.report": BASE
    | {"sweeper.core", "sweeper.tracking", "sweeper.trial", "sweeper.display"},
    "sweeper.executors": BASE
    | {
        "sweeper.core",
        "sweeper.tracking",
        "sweeper.trial",
        "sweeper.planning",
        "sweeper.search",
        "sweeper.display",
        "sweeper.conclusion",
        "sweeper.report",
        "steps",
    },
    "sweeper.launching": BASE
    | {"sweeper.core", "sweeper.tracking", "sweeper.planning", "sweeper.executors"},
    "sweeper.app": BASE
    | {"sweeper.core", "sweeper.planning", "sweeper.executors", "sweeper.launching"},
    # core.processes: Ctrl-C taken before anything else loads
    "sweeper.__main__": {"sweeper.core", "sweeper.executors", "sweeper.app"},
    "sweeper": set(),  # the package's own __init__
    "hydra_plugins": BASE | {"sweeper.planning", "sweeper.launching"},
}


def sources() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((PROJECT / package).rglob("*.py")):
            parts = list(path.relative_to(PROJECT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` imports, wherever in the file."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            names = [f"{base}.{alias.name}" for alias in node.names]
            if any(name not in known for name in names):  # a name defined in `base` itself
                names.append(base)
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def layer(module: str) -> str:
    return max((key for key in ALLOWED if module == key or module.startswith(f"{key}.")), key=len)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = sources()
    return {name: imports(name, path, set(modules)) for name, path in modules.items()}


def test_the_graph_sees_the_project(graph: dict[str, set[str]]) -> None:
    assert "sweeper.trial.lifecycle" in graph["steps.train"]
    assert "sweeper.executors.local.worker" in graph["sweeper.executors.local.scheduler"]
    # An import inside a function counts.
    assert "sweeper.trial.fitting" in graph["sweeper.trial.lifecycle"]


def test_no_import_circle(graph: dict[str, set[str]]) -> None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import circle: {' -> '.join(err.args[1])}")


def test_dependencies_point_one_way(graph: dict[str, set[str]]) -> None:
    wrong = []
    for module, targets in sorted(graph.items()):
        own = layer(module)
        for target in sorted(targets):
            theirs = layer(target)
            if theirs != own and theirs not in ALLOWED[own]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)
