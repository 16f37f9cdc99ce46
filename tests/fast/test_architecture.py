"""dialsgate's layout holds: a package per concern, layered, no import cycles, and no import
inside a function without a reason ("# Late: ...") where it stands. grimp reads the imports."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dialsgate"

#: Each package may import only the packages below it (same line: independent of each other).
LAYERS = (
    ("gate",),
    ("pytest_plugin", "report"),
    ("checks",),
    ("container", "transports"),
    ("environment", "modelfile", "protocol", "settings"),
    ("contract", "fingerprint"),
    ("inert", "limits", "plainfiles", "pysource", "spawning", "stopping"),
)


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("dialsgate")


def _imports(graph) -> dict[str, set[str]]:
    return {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}


def test_no_import_cycles(graph):
    edges, state, cycles = _imports(graph), {}, []

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(edges[module]):
            if state.get(imported) == "open":
                cycles.append(" -> ".join([*path[path.index(imported) :], imported]))
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_packages_import_only_the_layers_below(graph):
    rank = {name: depth for depth, names in enumerate(LAYERS) for name in names}
    wrong = []
    for module, imported in _imports(graph).items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in rank:
            continue
        for other in imported:
            target = other.split(".")[1] if other.count(".") else None
            if target in rank and target != parts[1] and rank[target] <= rank[parts[1]]:
                wrong.append(f"{module} imports {other}")
    assert not wrong, "imports against the layering " + str(LAYERS) + ":\n" + "\n".join(sorted(wrong))


def test_every_package_is_placed_in_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    placed = {name for names in LAYERS for name in names}
    assert packages | modules == placed


def test_no_import_inside_a_function_without_a_reason():
    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    nearby = " ".join(lines[max(0, node.lineno - 3) : node.end_lineno])
                    if "Late:" not in nearby:
                        unexplained.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, "imports inside functions need a '# Late: why' comment:\n" + "\n".join(unexplained)


def test_every_parse_holds_the_one_parse_lock():
    """CPython 3.11 cannot convert two syntax trees at once in one process (dialsgate.pysource): a
    gate run parses in several threads, so no module parses but through dialsgate.pysource, and
    vermin (which parses by itself) runs under its lock."""
    raw = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "pysource.py":
            continue
        text = path.read_text()
        for name in ("ast.parse(", "ast.literal_eval(", "compile("):
            if name in text and not (
                name == "compile(" and "re.compile(" in text and text.count("compile(") == text.count("re.compile(")
            ):
                raw.append(f"{path.relative_to(PACKAGE.parent)}: {name}")
    assert not raw, "parse through dialsgate.pysource (parse, literal):\n" + "\n".join(raw)
    static = (PACKAGE / "checks" / "static.py").read_text()
    assert "with PARSE_LOCK" in static and static.index("with PARSE_LOCK") < static.index(".detect(config)")
