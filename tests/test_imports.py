"""The package's modules import only downward: the static import graph of ``triton_init`` (with
``triton_init.kernels`` and ``triton_init.cli``), function-level imports included, has no cycle.

Edges come from the source (``ast``), so an import inside a function counts as much as one at the top:
``from . import x`` is an edge to the submodule ``x``, ``from . import name`` to the module defining it, and
names reached through the package's lazy exports (``triton_init.normal_``, ``import triton_init as ti;
ti.normal_``) are edges to the module ``_EXPORTS`` names.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# where each package's sources live (kernels/ installs as triton_init.kernels)
SOURCES = {"triton_init": ROOT / "triton_init", "triton_init.cli": ROOT / "triton_init" / "cli",
           "triton_init.kernels": ROOT / "kernels"}


def _modules() -> dict:
    """module name -> (path, is_package) of every source module."""
    modules = {}
    for package, folder in SOURCES.items():
        for path in sorted(folder.glob("*.py")):
            is_package = path.name == "__init__.py"
            modules[package if is_package else f"{package}.{path.stem}"] = (path, is_package)
    return modules


def _exports(modules) -> dict:
    """The package's lazy exports: public name -> the module defining it."""
    tree = ast.parse(modules["triton_init"][0].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            table = ast.literal_eval(node.value)
            return {name: "triton_init" + where for name, where in table.items()}
    raise AssertionError("triton_init/__init__.py has no _EXPORTS table")


def _top_level_names(path: Path) -> set:
    """The names a module binds at its top level (assignments, definitions, imports)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def _resolve(name: str, modules, exports) -> str | None:
    """The module ``name`` (a module or a module's attribute, dotted) stands for, if it is one of ours."""
    if name in modules:
        return name
    parent, _, attr = name.rpartition(".")
    if parent == "triton_init" and attr in exports:
        return exports[attr]
    if parent in SOURCES and attr not in _top_level_names(modules[parent][0]):
        return None  # a submodule without Python source (the compiled extension ``_native``): a leaf
    if parent in modules:
        return parent
    return None


def imports_of(module: str, modules, exports) -> set:
    """The modules of the package that ``module`` imports anywhere in its source."""
    path, is_package = modules[module]
    package = module if is_package else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    targets, package_aliases = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                targets.add(alias.name)
                if alias.name == "triton_init" and alias.asname:
                    package_aliases.add(alias.asname)
                elif alias.name == "triton_init":
                    package_aliases.add("triton_init")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                targets.add(f"{source}.{alias.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in package_aliases:
            targets.add(f"triton_init.{node.attr}")
    edges = {_resolve(t, modules, exports) for t in targets}
    return {e for e in edges if e is not None and e != module}


def import_graph() -> dict:
    """module -> the modules it imports; the package's own lazy exports count as its imports (looking a name
    up on ``triton_init`` imports the module defining it)."""
    modules = _modules()
    exports = _exports(modules)
    graph = {module: imports_of(module, modules, exports) for module in modules}
    graph["triton_init"] |= set(exports.values())
    return graph


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_graph_sees_lazy_imports_and_exports():
    """The parser finds what it must, or a clean graph would prove nothing."""
    modules = _modules()
    exports = _exports(modules)
    assert "triton_init.cli.init" in modules and "triton_init.kernels.fill" in modules
    assert exports["normal_"] == "triton_init._random"
    # a function-level import (cli/init runs frameworks only for --hf-config/--torchtitan)
    assert "triton_init.cli.frameworks" in imports_of("triton_init.cli.init", modules, exports)
    # a lazy export through the package alias (cli/bench: ``import triton_init as ti``; ``ti.normal_``)
    assert "triton_init._random" in imports_of("triton_init.cli.bench", modules, exports)
    assert "triton_init.kernels.interface" in imports_of("triton_init._format", modules, exports)
    # the compiled extension is a leaf, not the package; the package imports what it exports
    assert "triton_init" not in imports_of("triton_init._cpu", modules, exports)
    assert "triton_init.verify" in import_graph()["triton_init"]


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    detail = "; ".join(" <-> ".join(c) + " (edges: " + ", ".join(f"{v} -> {w}" for v in c for w in sorted(graph[v])
                                                                  if w in c) + ")" for c in found)
    assert not found, f"modules that import each other (directly or around a circle): {detail}"


@pytest.mark.parametrize("module", ["triton_init.cli._common", "triton_init._format", "triton_init.kernels.interface"])
def test_bottom_modules_import_nothing_above_them(module):
    """The layers' foundations: the CLI's argument types, the stream format's constants."""
    graph = import_graph()
    allowed = {"triton_init.cli._common": set(), "triton_init._format": {"triton_init.kernels.interface"},
               "triton_init.kernels.interface": set()}[module]
    assert graph[module] <= allowed
