"""manage.py import_dataset: a file as a new version, created if missing; a bad file changes nothing."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from datasets.models import Dataset, DatasetVersion
from tests.datasets.conftest import stored

pytestmark = pytest.mark.django_db


def test_import_creates_the_dataset_then_versions_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "cases.jsonl"
    first.write_text('{"q": "a", "expected": "A"}\n{"q": "b"}\n')
    call_command("import_dataset", "qa", str(first), "--message", "seed")
    assert "qa v1: 2 rows." in capsys.readouterr().out
    call_command("import_dataset", "qa", str(first))
    assert "unchanged, the content is v1's" in capsys.readouterr().out
    second = tmp_path / "more.txt"
    second.write_text("q,expected\nc,C\n")
    call_command("import_dataset", "qa", str(second), "--format", "csv")
    assert list(DatasetVersion.objects.values_list("number", "row_count", "message")) == [(2, 1, ""), (1, 2, "seed")]


def test_a_bad_file_is_an_error_naming_the_line_and_creates_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    with pytest.raises(CommandError, match=r"line 3: 1 fields where the header has 2\."):
        call_command("import_dataset", "qa", str(bad))
    assert not Dataset.objects.exists() and stored() == (0, 0, 0)
