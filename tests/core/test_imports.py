"""Who may import whom, read from the code's own import statements (every one, also inside functions).

core/ is below every app; the apps stack experiments → datasets → evaluations → runs → releases → workflows → prices →
payloads → blocks, with llm
beside them (prices reads llm's endpoints and the models payloads name);
observability/ is above them all and imported by none; orchestrator/ is the project's wiring, which only it and the
ASGI server import.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
APPS = ("llm", "blocks", "payloads", "prices", "workflows", "releases", "runs", "evaluations", "datasets", "experiments")
# What each package must never import: the apps above it, and the project's wiring.
ABOVE_RUNS = ("evaluations", "datasets", "experiments")
FORBIDDEN = {
    "core": {"orchestrator", "fakellm", "tests", *APPS},
    "llm": {"orchestrator", "blocks", "payloads", "prices", "workflows", "releases", "runs", *ABOVE_RUNS},
    "blocks": {"orchestrator", "payloads", "prices", "workflows", "releases", "runs", *ABOVE_RUNS},
    "payloads": {"orchestrator", "prices", "workflows", "releases", "runs", *ABOVE_RUNS},
    "prices": {"orchestrator", "workflows", "releases", "runs", *ABOVE_RUNS},
    "workflows": {"orchestrator", "releases", "runs", *ABOVE_RUNS},
    "releases": {"orchestrator", "runs", *ABOVE_RUNS},
    "runs": {"orchestrator", *ABOVE_RUNS},
    "evaluations": {"orchestrator", "datasets", "experiments"},
    "datasets": {"orchestrator", "experiments"},
    "experiments": {"orchestrator"},
}
# observability/ watches every app (through the engine's observers and the stored rows) and is
# imported by none: only the project's wiring names it.
for _forbidden in FORBIDDEN.values():
    _forbidden.add("observability")
FORBIDDEN["observability"] = {"orchestrator", "fakellm", "tests"}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    return [f"{path.relative_to(ROOT)}:{line} imports {imported}"
            for path in files for line, imported in imported_packages(path)
            if imported in FORBIDDEN[package]]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package: str) -> None:
    assert violations(package) == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("import os\n\ndef f():\n    from runs.models import Run\n    import payloads.services\n")
    assert imported_packages(module) == [(1, "os"), (4, "runs"), (5, "payloads")]


def test_the_settings_package_holds_only_the_project_wiring() -> None:
    modules = {path.name for path in (ROOT / "orchestrator").iterdir() if path.name != "__pycache__"}
    assert modules <= {"__init__.py", "settings.py", "urls.py", "asgi.py", "wsgi.py", "routing.py"}
