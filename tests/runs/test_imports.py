"""The shape of runs/ as its imports draw it: the engine is a room of its own, and nothing is circular.

Read from the source with `ast` (what each module imports at module level, and in functions),
and proven once more by importing each module first in a fresh interpreter.
"""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs"
# runs.retention: the hourly prune both executors schedule; it reads only models (runs, releases).
# runs.reprice: the reprice jobs both executors run; it reads models and the price book.
ENGINE_MAY_IMPORT_FROM_RUNS = ("runs.models", "runs.engine", "runs.retention", "runs.reprice")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(RUNS.rglob("*.py"))
           if "migrations" not in path.parts and "templatetags" not in path.parts}


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement loads: `from runs.engine import events` loads runs.engine.events."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]


def _imports(path: Path) -> tuple[set[str], list[tuple[int, str, bool]]]:
    """(modules imported at module level, [(line, module, commented) of imports inside functions]).

    `commented`: a comment line stands right above the import (or above its block of imports).
    """
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    top: set[str] = set()
    nested: list[tuple[int, str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                if in_function:
                    # The comment goes above the block of imports this one belongs to.
                    above = child.lineno - 2
                    while above > 0 and lines[above].strip().startswith(("import ", "from ")):
                        above -= 1
                    above = lines[above].strip()
                    nested.extend((child.lineno, name, above.startswith("#")) for name in _imported(child))
                else:
                    top.update(_imported(child))
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(tree, False)
    return top, nested


def test_retention_imports_nothing_of_runs_but_its_models() -> None:
    top, nested = _imports(RUNS / "retention.py")
    assert {m for m in top | {module for _, module, _ in nested} if m.startswith("runs")} == {"runs.models"}


def test_the_engine_imports_no_page_side_of_runs() -> None:
    engine = {name: path for name, path in MODULES.items() if name.startswith("runs.engine")}
    assert {"runs.engine", "runs.engine.ledger", "runs.engine.runner", "runs.engine.dbthread"} <= set(engine)
    for name, path in engine.items():
        top, nested = _imports(path)
        for imported in top | {module for _, module, _ in nested}:
            if imported.startswith("runs.") or imported == "runs":
                assert imported.startswith(ENGINE_MAY_IMPORT_FROM_RUNS), f"{name} imports {imported}"


def test_no_import_hides_in_a_function_without_a_comment_saying_why() -> None:
    for name, path in MODULES.items():
        _, nested = _imports(path)
        silent = [(line, module) for line, module, commented in nested if not commented]
        assert not silent, f"{name}: imports inside functions with no comment above: {silent}"


def test_the_module_imports_of_runs_form_no_cycle() -> None:
    graph = {name: {m for m in _imports(path)[0] if m in MODULES and m != name} for name, path in MODULES.items()}
    # A package's own submodules import it first: that edge is how Python loads them, not a cycle.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(f"{m}.")}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError(f"import cycle: {' -> '.join([*path[path.index(name):], name])}")
        if name in done:
            return
        for imported in sorted(graph[name]):
            visit(imported, [*path, name])
        done.add(name)

    for name in graph:
        visit(name, [])
    # The pages call the engine, never the other way round.
    assert "runs.engine" in graph["runs.services"]
    reached, todo = set(), [name for name in graph if name.startswith("runs.engine")]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo += graph[name]
    assert not reached & {"runs.services", "runs.selectors", "runs.views", "runs.api", "runs.consumers"}


# Procrastinate's models need its app installed: the distributed tests' workers import this one.
NEEDS_PROCRASTINATE = {"runs.engine.tasks"}

FRESH_IMPORTS = """
import importlib, sys
import django
django.setup()
from django.contrib import admin
kept = {"runs", "runs.apps", "runs.models", "runs.migrations"}
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if (m == "runs" or m.startswith("runs.")) and m not in kept
                   and not m.startswith("runs.migrations")]:
        del sys.modules[loaded]
    # runs.admin registers its models again when imported again.
    for model in [m for m in admin.site._registry if m._meta.app_label == "runs"]:
        admin.site.unregister(model)
    importlib.import_module(name)
    print("imported", name)
"""


def test_each_runs_module_imports_first_in_a_fresh_interpreter() -> None:
    names = sorted(set(MODULES) - NEEDS_PROCRASTINATE - {"runs", "runs.apps", "runs.models"})
    done = subprocess.run([sys.executable, "-c", FRESH_IMPORTS, *names], cwd=ROOT, capture_output=True, text=True,
                          env={"DEBUG": "1", "DJANGO_SETTINGS_MODULE": "orchestrator.settings", "PATH": "/usr/bin:/bin"},
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:-1] == [f"imported {name}" for name in names]


WORKER_IMPORTS = """
import sys
import django
django.setup()
import runs.engine
print(" ".join(sorted({m.split(".")[0] for m in sys.modules} & {"psycopg", "requests", "yaml", "pygments", "uritemplate"})))
"""


def test_a_worker_that_runs_the_engine_loads_no_api_framework() -> None:
    """django.setup() imports every app's admin; none of that may pull the API's serializers (and with them
    drf-spectacular's schema generation: psycopg, requests, yaml, pygments, about 18 MB) into a worker."""
    done = subprocess.run([sys.executable, "-c", WORKER_IMPORTS], cwd=ROOT, capture_output=True, text=True,
                          env={"DEBUG": "1", "DJANGO_SETTINGS_MODULE": "orchestrator.settings", "PATH": "/usr/bin:/bin"},
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == ""
