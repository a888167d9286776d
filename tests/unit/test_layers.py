"""The package layers of docs/architecture.md §1: every module imports, no import circle, imports point down.

The import graph is read from the source with :mod:`ast`, so the check does not depend on what happens to be
imported already: every ``import`` statement counts, also those inside functions (a lazy import that closes a
circle is still a circle), but not those under ``if TYPE_CHECKING:`` (annotations only).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("drivers", "simulator", "reservoir", "daemon")
#: Layer -> packages of the project it must never import (docs/architecture.md §1).
FORBIDDEN = {
    "drivers": ("simulator", "reservoir", "daemon"),
    "simulator": ("daemon", "reservoir"),
    "reservoir": ("daemon", "drivers"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    """Dotted name -> source file of every module under :data:`PACKAGES`."""
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[module_name(path)] = path
    return out


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from pkg import sub`` counts ``pkg.sub`` when ``sub`` is a
    module, else ``pkg``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in _runtime_nodes(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names]
            targets = [t for t in subs if t in known]
            if len(targets) < len(subs):  # some names are attributes of ``mod`` itself
                targets.append(mod)
        for t in targets:
            if t in known and t != name:
                out.add(t)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = project_modules()
    known = set(mods)
    return {name: imports_of(name, path, known) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_planted_circle() -> None:
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(g) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_reads_relative_and_from_imports(tmp_path: Path) -> None:
    src = tmp_path / "mod.py"
    src.write_text(
        "from . import b\nfrom .c import x\nimport d.e\nif TYPE_CHECKING:\n    import q\n\n"
        "def f():\n    from g import h\n"
    )
    known = {"p.b", "p.c", "d.e", "g", "g.h", "p", "q"}
    assert imports_of("p.a", src, known) == {"p.b", "p.c", "d.e", "g.h"}


def test_no_import_circle() -> None:
    assert cycles(import_graph()) == []


def test_layers_import_down_only() -> None:
    bad = [
        f"{mod} imports {dep}"
        for mod, deps in import_graph().items()
        for dep in deps
        if dep.split(".")[0] in FORBIDDEN.get(mod.split(".")[0], ())
    ]
    assert bad == []


def test_nothing_imports_the_command_line() -> None:
    bad = [
        f"{mod} imports {dep}"
        for mod, deps in import_graph().items()
        for dep in deps
        if dep.startswith("daemon.cli") and not mod.startswith("daemon.cli") and not mod.endswith("__main__")
    ]
    assert bad == []


#: The daemon modules that run the emulator (or parse its settings); docs/architecture.md §1.
DAEMON_TO_SIMULATOR = ("daemon.sim_boards", "daemon.dry_run", "daemon.config.load")


def test_the_daemon_reaches_the_emulator_through_few_doors() -> None:
    doors = sorted(
        mod
        for mod, deps in import_graph().items()
        if mod.startswith("daemon.")
        and not mod.startswith("daemon.cli")
        and any(d.startswith("simulator") for d in deps)
    )
    assert set(doors) <= set(DAEMON_TO_SIMULATOR), doors


def test_reservoir_makers_import_only_the_spec() -> None:
    g = import_graph()
    importers = sorted(m for m, deps in g.items() if "reservoir.registry" in deps)
    assert all(not m.startswith("reservoir.") or m == "reservoir.bench" for m in importers), importers
    assert "reservoir.spec" in g["reservoir.esn"] and "reservoir.registry" not in g["reservoir.esn"]


@pytest.mark.parametrize("name", sorted(m for m in project_modules() if not m.endswith("__main__")))
def test_every_module_imports(name: str) -> None:
    if name.startswith("reservoir.spiking") and importlib.util.find_spec("torch") is None:
        pytest.skip("needs the neuro extra (torch)")
    importlib.import_module(name)
