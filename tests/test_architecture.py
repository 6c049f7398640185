"""The package's architecture, checked statically (docs/architecture.md).

- no import cycle between analogep's modules;
- every import respects the layer order (a module imports only from its own subpackage
  or a lower layer);
- pyproject.toml lists every subpackage, so an installed analogep is complete;
- every name registered in analogep.registry resolves to something callable;
- docs/architecture.md lists the same layers in the same order, and names every layered
  package in its table of subpackages.

The import graph is read with `ast` (no module is imported to build it): module-level and
function-level imports both count; imports under `if TYPE_CHECKING:` are annotation-only
and do not. analogep/__init__.py only re-exports the API lazily and is not layered.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import networkx as nx
import pytest

import analogep.registry as registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "analogep"

# Lowest first, as docs/architecture.md lists them. A module may import from its own layer or
# a lower one; layers 1 and up are one package each, so "own layer" means its own package there
# (analogep.spice.run is a layer of its own, below the rest of analogep.spice).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("analogep.errors", "analogep.io", "analogep.runtime", "analogep.data", "analogep.registry"),
    ("analogep.config",),
    ("analogep.model",),
    ("analogep.solvers",),
    ("analogep.devices",),
    ("analogep.spice.run",),  # before analogep.spice: layer_of takes the first match
    ("analogep.spice",),
    ("analogep.backends",),
    ("analogep.ep",),
    ("analogep.objectives",),
    ("analogep.training",),
    ("analogep.accounting",),
    ("analogep.evaluation",),
    ("analogep.api",),
    ("analogep.cli",),
    ("analogep.__main__",),
)
UNLAYERED = {"analogep"}  # analogep/__init__.py: lazy re-export of the API


# The import graph ------------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST):
    """Every Import/ImportFrom under `node`, at any depth, except in `if TYPE_CHECKING:` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                if isinstance(other, (ast.Import, ast.ImportFrom)):
                    yield other
                yield from _import_nodes(other)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        yield from _import_nodes(child)


def _known(name: str, modules) -> str:
    """`name`, or its longest prefix that is a module of the package (import a.b.c imports a.b.c)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return name


def imports_of(source: str, module: str, is_package: bool, modules) -> set[str]:
    """The analogep modules `module` imports (resolved as described in the module docstring)."""
    found: set[str] = set()
    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:  # relative import: resolve against the importing package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in modules else base)
        for target in targets:
            if target == "analogep" or target.startswith("analogep."):
                resolved = _known(target, modules)
                if resolved != module:
                    found.add(resolved)
    return found


def import_graph() -> nx.DiGraph:
    modules = all_modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        for target in imports_of(path.read_text(), module, path.name == "__init__.py", modules):
            graph.add_edge(module, target)
    return graph


def layer_of(module: str) -> int | None:
    for level, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return None


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph()


# The reader itself -------------------------------------------------------------------------------


def test_reader_sees_imports_and_skips_type_checking():
    modules = {"analogep.ep.step", "analogep.objectives", "analogep.objectives.base", "analogep.model",
               "analogep.model.energy", "analogep.config.spec", "analogep.config", "analogep.errors"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "import typing\n"
        "from analogep.model import energy\n"
        "from analogep.config.spec import Spec\n"
        "if TYPE_CHECKING:\n    from analogep.objectives.base import Objective\n"
        "else:\n    import analogep.errors\n"
        "if typing.TYPE_CHECKING:\n    import analogep.objectives\n"
        "def f():\n    from .. import objectives\n"
    )
    assert imports_of(source, "analogep.ep.step", False, modules) == {
        "analogep.model.energy", "analogep.config.spec", "analogep.errors", "analogep.objectives",
    }


def test_graph_is_read(graph):
    assert graph.has_edge("analogep.backends.spice_backend", "analogep.devices.crossbar")
    assert graph.has_edge("analogep.solvers.factory", "analogep.registry")
    # ep/step.py imports objectives only for annotations
    assert not graph.has_edge("analogep.ep.step", "analogep.objectives.base")


# The properties -----------------------------------------------------------------------------------


def test_no_import_cycles(graph):
    # one cycle per strongly connected component (enumerating every cycle can explode)
    cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            edges = nx.find_cycle(graph.subgraph(component))
            cycles.append(" -> ".join([a for a, _ in edges] + [edges[0][0]]))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))


def test_every_module_has_a_layer(graph):
    missing = sorted(m for m in graph if m not in UNLAYERED and layer_of(m) is None)
    assert not missing, f"modules outside the layer order (add them to LAYERS and docs/architecture.md): {missing}"


def test_imports_respect_layers(graph):
    bad = []
    for src, dst in sorted(graph.edges):
        if src in UNLAYERED:
            continue
        ls, ld = layer_of(src), layer_of(dst)
        if ls is None:
            continue  # reported by test_every_module_has_a_layer
        if ld is None or ld > ls:
            bad.append(f"{src} (layer {ls}) -> {dst} (layer {ld})")
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def _doc_section(title: str) -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_documented_layers_are_the_enforced_ones():
    documented = [
        tuple(f"analogep.{name}" for name in re.findall(r"`([\w.]+)`", names))
        for _, names in re.findall(r"^(\d+)\. (.+)$", _doc_section("Layers"), re.M)
    ]
    assert documented == list(LAYERS), "docs/architecture.md's layer list differs from LAYERS"


def test_the_documented_packages_are_the_layered_ones():
    rows = [line.split("|")[1] for line in _doc_section("Subpackages").splitlines() if line.startswith("| `")]
    documented = {name.replace("/", ".") for row in rows for name in re.findall(r"`([\w/]+)`", row)}
    layered = {name.removeprefix("analogep.") for layer in LAYERS for name in layer} - {"__main__"}
    assert layered <= documented, f"packages docs/architecture.md does not describe: {sorted(layered - documented)}"
    assert documented <= layered, f"docs/architecture.md describes packages that are not layered: {sorted(documented - layered)}"


def test_pyproject_lists_every_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    expected = {module_name(p.parent) for p in PACKAGE.rglob("__init__.py") if "__pycache__" not in p.parts}
    expected.add("analogep.circuits")
    assert config.get("package-dir", {}).get("analogep.circuits") == "circuits"
    assert (ROOT / "circuits").is_dir()
    assert not expected - listed, f"missing from [tool.setuptools] packages: {sorted(expected - listed)}"
    assert not listed - expected, f"listed but no such package: {sorted(listed - expected)}"


@pytest.mark.parametrize(
    "kind,name", [(kind, name) for kind, table in registry.TABLES.items() for name in table]
)
def test_registered_names_resolve(kind, name):
    target = registry.resolve(kind, name)
    assert callable(target), f"{kind} {name!r} -> {registry.TABLES[kind][name]} is not callable"


def test_no_merge_conflict_markers_are_left_in_tracked_text():
    """Parallel branches are merged here; a marker left behind must fail loudly, not ship."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True).stdout.split()
    if not files:  # not a git checkout (an sdist): nothing to scan
        return
    bad = []
    for name in files:
        path = root / name
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".cir", ".lib", ".txt"} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "=======":
                bad.append(f"{name}:{number}")
    assert not bad, "merge conflict markers: " + ", ".join(bad[:10])
