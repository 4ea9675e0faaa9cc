"""The library's floors: every import (also one inside a function) points into its own package or
to a lower floor, and no two modules import each other, directly or round a circle.  The floors,
bottom to top, as docs/development.md words them."""

import pytest

from resstream.base.code_fingerprint import PACKAGE_DIR, imported_names, module_file

FLOORS = (
    ("base",),
    ("model",),
    ("data",),
    ("fv", "activations"),
    ("analysis",),
    ("compare", "atlas", "ablation", "dictionary"),
    ("workflow",),
    ("api",),
    ("cli",),
)
FLOOR_OF = {package: floor for floor, packages in enumerate(FLOORS) for package in packages}
FLOOR_OF[""] = 0  # the package's own __init__: its version, and no import


def module_name(path) -> str:
    parts = ["resstream", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_imports() -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the whole package; a ``from a import b`` counts as an
    import of ``a.b`` where that is a module, else of ``a``."""
    graph = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        name = module_name(path)
        targets = set()
        for imported in imported_names(path):
            while imported and module_file(imported) is None:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def stage(module: str) -> str:
    """The package (floor name) a module belongs to: ``resstream.model.weights`` -> ``model``."""
    return module.split(".")[1] if "." in module else ""


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{source} imports {target}: {stage(target) or 'resstream'} is not below {stage(source) or 'resstream'}"
        for source, targets in sorted(graph.items())
        for target in sorted(targets)
        if stage(source) != stage(target) and FLOOR_OF[stage(target)] >= FLOOR_OF[stage(source)]
    ]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_package_has_a_floor():
    packages = {stage(m) for m in library_imports()}
    assert packages <= set(FLOOR_OF), (
        f"packages without a floor in this test's table: {sorted(packages - set(FLOOR_OF))}"
    )


def test_no_import_points_up():
    assert upward_imports(library_imports()) == []


def test_no_import_circle():
    assert circles(library_imports()) == []


@pytest.mark.parametrize(
    "graph, expected",
    [
        (
            {"resstream.model.a": {"resstream.analysis.b"}, "resstream.analysis.b": set()},
            ["resstream.model.a imports resstream.analysis.b: analysis is not below model"],
        ),
        (
            {"resstream.fv.a": {"resstream.activations.b"}, "resstream.activations.b": set()},
            ["resstream.fv.a imports resstream.activations.b: activations is not below fv"],
        ),
        ({"resstream.cli": {"resstream.api", "resstream"}, "resstream.api": {"resstream.base.x"}}, []),
    ],
)
def test_the_check_names_an_upward_import(graph, expected):
    assert upward_imports(graph) == expected


def test_the_check_finds_a_circle_through_an_import_inside_a_function(tmp_path):
    graph = {
        "resstream.model.a": {"resstream.model.b"},
        "resstream.model.b": {"resstream.model.c"},
        "resstream.model.c": {"resstream.model.a"},
        "resstream.model.d": {"resstream.model.a"},
    }
    assert circles(graph) == [["resstream.model.a", "resstream.model.b", "resstream.model.c"]]
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from resstream.model.weights import load_model\n")
    assert "resstream.model.weights" in imported_names(source)
