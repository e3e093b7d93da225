"""CONTRIBUTING.md and AGENTS.md stay true: every path they name exists."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A path in backticks: it has a slash, or it is a file at the root ("AGENTS.md"); a bare "services.py"
# means every app's and is not checked.
PATH = re.compile(r"`([A-Za-z_.][\w.-]*/[\w./-]*|[A-Z][\w-]*\.md)`")


def named_paths(text: str) -> list[str]:
    return sorted({found.rstrip("/") for found in PATH.findall(text) if "<" not in found})


@pytest.mark.parametrize("guide", ["AGENTS.md", "CONTRIBUTING.md"])
def test_every_path_a_guide_names_exists(guide: str) -> None:
    paths = named_paths((ROOT / guide).read_text())
    assert len(paths) > 10  # the pattern still finds the paths
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert missing == []


def test_a_renamed_module_would_be_caught() -> None:
    assert named_paths("see `runs/batching.py` and `core/sql.py`") == ["core/sql.py", "runs/batching.py"]
    assert not (ROOT / "runs/batching.py").exists()
