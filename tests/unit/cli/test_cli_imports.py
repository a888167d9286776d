"""Nothing imports the command line: every module outside ``daemon/cli/`` is checked on its syntax tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: Library and tool trees; tests drive the command line on purpose and are not walked.
TREES = ("drivers", "simulator", "reservoir", "daemon", "benchmarks", "fuzz", "scripts")
CLI = ROOT / "daemon" / "cli"
#: ``python -m daemon`` is the command line's second entry point, not library code.
ENTRY_POINTS = {ROOT / "daemon" / "__main__.py"}


def _is_cli(module: str) -> bool:
    return module == "daemon.cli" or module.startswith("daemon.cli.")


def cli_imports(source: str) -> list[str]:
    """Every ``daemon.cli`` module named by an import statement anywhere in ``source`` (lazy ones too)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                a.name for a in node.names if a.name == "daemon.cli" or a.name.startswith("daemon.cli.")
            ]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _is_cli(node.module):
                found.append(node.module)
            elif node.module == "daemon":
                found += [f"daemon.{a.name}" for a in node.names if a.name == "cli"]
    return found


def _modules() -> list[Path]:
    files = [p for tree in TREES if (ROOT / tree).is_dir() for p in sorted((ROOT / tree).rglob("*.py"))]
    return [p for p in files if CLI not in p.parents and p not in ENTRY_POINTS]


def test_the_check_sees_every_import_form() -> None:
    src = "import daemon.cli\nfrom daemon.cli.errors import X\nfrom daemon import cli\n"
    src += "def f():\n    import daemon.cli.x\n"
    assert cli_imports(src) == ["daemon.cli", "daemon.cli.errors", "daemon.cli", "daemon.cli.x"]
    assert cli_imports("import daemon.client\nfrom daemon.clinic import y\nfrom daemon import config\n") == []


@pytest.mark.parametrize("tree", TREES)
def test_nothing_outside_the_command_line_imports_it(tree: str) -> None:
    bad = {
        str(p.relative_to(ROOT)): names
        for p in _modules()
        if p.relative_to(ROOT).parts[0] == tree and (names := cli_imports(p.read_text(encoding="utf-8")))
    }
    assert bad == {}, f"library code imports the command line (move the function down): {bad}"


def test_the_walk_covers_the_library() -> None:
    names = {str(p.relative_to(ROOT)) for p in _modules()}
    assert {
        "daemon/live/service.py",
        "daemon/recording.py",
        "reservoir/bench.py",
        "drivers/frames.py",
    } <= names
    assert not any(n.startswith("daemon/cli/") for n in names)
