"""The layers import only downwards: contracts <- libs <- services <- exports (and the tests).

Read from the source (each file's syntax tree, imports inside functions included), so a
lazy import cannot slip a layer past the rule the way it would slip past an import-time check.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported(path: Path, root: Path = ROOT) -> Iterator[str]:
    """Every module the file imports, relative imports resolved to their full names."""
    package = list(path.relative_to(root).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            yield module
            # `from libs import agent` imports the module libs.agent.
            yield from (f"{module}.{alias.name}" for alias in node.names)


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py")):
        for module in imported(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return sorted(set(found))


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        # The wire contracts are the bottom layer: every service and library reads them.
        ("contracts", ("libs", "services", "exports", "tests")),
        ("libs", ("services", "exports", "tests")),
        # A provider call takes tool definitions; the agent that offers them sits above.
        ("libs.llm", ("libs.agent",)),
        ("services", ("exports", "tests")),
    ],
)
def test_a_layer_imports_nothing_above_it(package: str, forbidden: tuple[str, ...]) -> None:
    assert violations(package, forbidden) == []


def test_services_never_import_each_other() -> None:
    services = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())
    found = []
    for name in services:
        others = tuple(f"services.{other}" for other in services if other != name)
        found += violations(f"services.{name}", others)
    assert found == []


def test_the_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    probe = tmp_path / "libs" / "llm" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("def f():\n    from libs.agent import tools\n    from ..agent.loop import run\n")

    assert set(imported(probe, tmp_path)) == {
        "libs.agent",
        "libs.agent.tools",
        "libs.agent.loop",
        "libs.agent.loop.run",
    }
