"""The shape of the code: imports point one way, no import circle, small files.

Every import counts, including those inside functions (they run too) and under TYPE_CHECKING
(they tie the modules together for the reader and the type checker)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from support.servers import PROJECT

PACKAGES = ("sweeper", "steps", "hydra_plugins")
MAX_LINES = 300

# What each layer may import from the project (besides itself); everything else is refused.
ALLOWED = {
    "sweeper.safe_text": set(),  # standard library only
    "sweeper.errors": {"sweeper.safe_text"},
    "sweeper.core": {"sweeper.errors", "sweeper.safe_text"},
    "steps": {"sweeper.core", "sweeper.errors", "sweeper.safe_text"},
    "sweeper.planning": {"sweeper.core", "sweeper.errors", "sweeper.safe_text"},
    "sweeper.display": {"sweeper.core", "sweeper.errors", "sweeper.safe_text"},
    "sweeper.conclusion": {"sweeper.core", "sweeper.errors", "sweeper.safe_text"},
    "sweeper.report": {"sweeper.core", "sweeper.display", "sweeper.errors", "sweeper.safe_text"},
    "sweeper.executors": {
        "sweeper.core", "sweeper.errors", "sweeper.planning", "sweeper.display",
        "sweeper.conclusion", "sweeper.report", "steps", "sweeper.safe_text",
    },
    "sweeper.launching": {
        "sweeper.core", "sweeper.errors", "sweeper.planning", "sweeper.executors",
        "sweeper.safe_text",
    },
    "sweeper.app": {"sweeper.core", "sweeper.planning", "sweeper.executors", "sweeper.launching",
                    "sweeper.safe_text"},
    "sweeper.__main__": {"sweeper.executors", "sweeper.app"},
    "sweeper": set(),  # the package's own __init__
    "hydra_plugins": {"sweeper.planning", "sweeper.launching", "sweeper.safe_text"},
}  # fmt: skip


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
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1],
                                 *([base] if base else [])])  # fmt: skip
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
    assert "sweeper.core.lifecycle" in graph["steps.train"]
    assert "sweeper.executors.local.worker" in graph["sweeper.executors.local.scheduler"]
    # An import inside a function counts.
    assert "sweeper.core.fitting" in graph["sweeper.core.lifecycle"]


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


def test_no_source_file_is_long() -> None:
    files = [*sources().values(), *(PROJECT / "tests").rglob("*.py")]
    long = {str(p.relative_to(PROJECT)): n for p in files
            if (n := len(p.read_text().splitlines())) > MAX_LINES}  # fmt: skip
    assert not long, long
