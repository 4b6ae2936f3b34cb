"""No import cycles among ``racing_rl``'s modules, counting imports inside functions.

The graph is read from the source (AST), not from ``sys.modules``: every ``import`` and
``from ... import`` anywhere in a module (module level, functions, methods) is an edge,
relative ones (``from . import x``) resolved, ``from package import module`` to the
module. Importing ``a.b.c`` also runs the packages ``a.b`` and ``a``, so those are edges
too, except for the importer's own packages (Python has already run them). Imports under
``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import racing_rl


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package at ``root``: dotted name -> file."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of ``tree`` at any depth, outside ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _imports_of(child))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _imports(node)


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (see the module docstring).

    Args:
        root: the package's directory.
        package: its dotted name.
    """
    modules = module_files(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{anchor}.{base}" if base else anchor
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
        own_packages = {name.rsplit(".", k)[0] for k in range(name.count(".") + 1)}
        edges = set()
        for target in targets:
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                ancestor = ".".join(parts[:k])
                if ancestor in modules and ancestor not in own_packages:
                    edges.add(ancestor)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        return list(reversed(err.args[1]))
    return None


def test_racing_rl_has_no_import_cycle() -> None:
    root = Path(racing_rl.__file__).parent
    graph = import_graph(root, "racing_rl")
    assert "racing_rl.envs.race" in graph["racing_rl.vec"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A package ``pkg`` whose modules ``a`` and ``sub.b`` import each other, ``a`` from
    inside a function with ``from .sub import b``, ``b`` with ``from .. import a``."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "a.py").write_text("def f():\n    from .sub import b\n    return b\n")
    (root / "sub" / "b.py").write_text("from .. import a\n")
    (root / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
        "else:\n    import pkg.sub.b\n"
    )
    return root


def test_import_graph_reads_function_level_and_relative_imports(package: Path) -> None:
    graph = import_graph(package, "pkg")
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg.sub", "pkg.sub.b"}  # not the TYPE_CHECKING import
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) == {"pkg.a", "pkg.sub.b"}


def test_no_cycle_once_the_function_level_import_goes(package: Path) -> None:
    (package / "a.py").write_text("def f():\n    return 1\n")
    assert find_cycle(import_graph(package, "pkg")) is None


def hydra_apps(root: Path, package: str) -> set[str]:
    """The modules that define a ``@hydra.main`` (or ``racing_rl.config.hydra_main``)
    function: the commands' Hydra apps."""
    apps = set()
    for name, path in module_files(root, package).items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                ast.unparse(decorator).startswith(("hydra.main", "hydra_main"))
                for decorator in node.decorator_list
            ):
                apps.add(name)
    return apps


def test_no_module_imports_a_command_s_hydra_app():
    """Commands flow one way: an app parses, calls plain functions and prints; nothing but
    the dispatcher (``racing_rl.cli``, by name) imports an app, whose import may register
    resolvers."""
    root = Path(racing_rl.__file__).parent
    graph = import_graph(root, "racing_rl")
    apps = hydra_apps(root, "racing_rl")
    assert {"racing_rl.train", "racing_rl.evaluate", "racing_rl.export.app"} <= apps
    importers = {(module, app) for module, targets in graph.items() for app in targets & apps}
    assert not importers, f"(importer, app): {sorted(importers)}"
