"""The house rules, checked by walking the source: layer imports, module and function sizes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "geomag", "models", "xai")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
MAX_PARAMETERS = 8
# Binary/text reader validation reads top to bottom; it may stay long.
LONG_FUNCTIONS_ALLOWED = {("geomag/bmkg.py", "read_frg604_day")}

# (importing module prefix, forbidden imported prefixes)
LAYER_RULES = [
    ("core", ("geomag", "models", "xai")),
    ("geomag", ("models", "xai")),
    ("models", ("xai",)),
    ("xai.explainers", ("xai.tasks", "xai.render", "xai.html", "xai.compare", "xai.trust", "xai.dataset")),
    ("xai.metrics", ("xai.tasks", "xai.render", "xai.html", "xai.compare", "xai.trust", "xai.dataset")),
    ("xai.reliance", ("xai.tasks", "xai.render", "xai.html", "xai.compare", "xai.trust", "xai.dataset")),
]
LIBRARY_NEVER_IMPORTS = ("xai.tasks",)  # library code never imports tasks
PICTURES = ("xai.render", "xai.html", "matplotlib")
NUMBERS = (  # aggregation and measurement: never import pictures
    "xai.attention",
    "xai.similarity",
    "xai.metrics",
    "xai.reliance",
    "xai.indicators",
    "xai.components",
    "xai.trust.indicators",
    "xai.trust.confound",
    "xai.shards",
    "xai.merge",
    "xai.pipeline",
    "xai.trust.aggregate",
    "xai.trust.verdicts",
    "xai.compare.discover",
    "xai.compare.load",
    "xai.compare.aggregate",
)


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).with_suffix("")
            parts = list(relative.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append((".".join(parts), path))
    return found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


MODULES = _modules()


def test_modules_are_found():
    names = {name for name, _ in MODULES}
    assert {"core.errors", "core.io", "geomag.readers", "models.graph", "xai.explainers.gradcam"} <= names


@pytest.mark.parametrize(("name", "path"), MODULES, ids=[name for name, _ in MODULES])
def test_layer_imports(name: str, path: Path):
    imported = _imports(path)
    problems = []
    for importer, forbidden in LAYER_RULES:
        if _within(name, importer):
            problems += [i for i in imported for f in forbidden if _within(i, f)]
    if not _within(name, "xai.tasks"):
        problems += [i for i in imported for f in LIBRARY_NEVER_IMPORTS if _within(i, f)]
    if any(_within(name, n) for n in NUMBERS):
        problems += [i for i in imported for f in PICTURES if _within(i, f)]
    assert not problems, f"{name} imports across the layers: {sorted(set(problems))}"


def _parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    count = len(names) + (args.vararg is not None) + (args.kwarg is not None)
    return count - (1 if names and names[0] in ("self", "cls") else 0)


@pytest.mark.parametrize(("name", "path"), MODULES, ids=[name for name, _ in MODULES])
def test_sizes(name: str, path: Path):
    source = path.read_text(encoding="utf-8")
    relative = path.relative_to(ROOT).as_posix()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{relative} has over {MAX_MODULE_LINES} lines"
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        lines = node.end_lineno - node.lineno + 1
        if lines > MAX_FUNCTION_LINES and (relative, node.name) not in LONG_FUNCTIONS_ALLOWED:
            problems.append(f"{node.name} has {lines} lines")
        if _parameter_count(node) > MAX_PARAMETERS:
            problems.append(f"{node.name} has {_parameter_count(node)} parameters")
    assert not problems, f"{relative}: {problems}"


def test_the_checker_sees_a_violation(tmp_path):
    """The walker itself works: a module that imports tasks and a 9-parameter function are caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from xai.tasks.explain import run\n\ndef f(a, b, c, d, e, f, g, h, i):\n    return a\n")
    assert "xai.tasks.explain" in _imports(bad)
    tree = ast.parse(bad.read_text())
    function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    assert _parameter_count(function) == 9
