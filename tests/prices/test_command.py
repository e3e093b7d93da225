"""`manage.py prices export|import`: the book as JSON, imported all or nothing through prices.services."""
import json
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from prices.models import Price
from tests.factories import make_endpoint
from tests.prices.conftest import make_price

pytestmark = pytest.mark.django_db

COMMON = Path(settings.BASE_DIR) / "docs" / "prices" / "common-models-2026-12.json"


def entry(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "match": "exact", "endpoint": None, "effective_from": "2026-01-01T00:00:00+00:00",
            "input_per_million": "1.5", "output_per_million": "2", "currency": "USD", "note": "", **fields}


def run_import(tmp_path: Path, prices: list[Any], *args: str) -> str:
    path = tmp_path / "book.json"
    path.write_text(json.dumps({"format": 1, "prices": prices}))
    out = StringIO()
    call_command("prices", "import", str(path), *args, stdout=out)
    return out.getvalue()


def test_export_then_import_into_an_empty_book_gives_the_same_book(tmp_path: Path) -> None:
    endpoint = make_endpoint(name="ollama")
    make_price("qwen.*", match="regex", endpoint=endpoint, cached_input_per_million=Decimal("0.000001"),
               note="self-hosted estimate")
    make_price("gpt-4o", reasoning_per_million=Decimal("12.5"), currency="EUR")
    out = tmp_path / "book.json"
    call_command("prices", "export", "--out", str(out), stderr=StringIO())
    book = json.loads(out.read_text())
    assert book["format"] == 1 and "exported_at" in book
    exported = {row["model"]: row for row in book["prices"]}
    assert exported["qwen.*"]["endpoint"] == "ollama" and exported["qwen.*"]["match"] == "regex"
    assert exported["qwen.*"]["cached_input_per_million"] == "0.000001"
    assert exported["gpt-4o"]["reasoning_per_million"] == "12.500000"
    Price.objects.all().delete()
    call_command("prices", "import", str(out), stdout=StringIO())
    again = StringIO()
    call_command("prices", "export", stdout=again)
    assert json.loads(again.getvalue())["prices"] == book["prices"]


def test_an_entry_equal_to_one_in_the_book_updates_it_instead_of_tying(tmp_path: Path) -> None:
    price = make_price("m", effective_from="2026-01-01T00:00:00Z")
    assert "1 updated" in run_import(tmp_path, [entry(input_per_million="9")])
    price.refresh_from_db()
    assert (Price.objects.count(), price.input_per_million, price.version) == (1, Decimal("9"), 2)
    assert "1 unchanged" in run_import(tmp_path, [entry(input_per_million="9.000")])
    assert Price.objects.get().version == 2


def test_one_bad_entry_imports_nothing_and_the_error_names_entry_and_field(tmp_path: Path) -> None:
    make_endpoint(name="ollama")
    prices = [entry(model="a"), entry(model="b", input_per_million="-1"), entry(model="c", endpoint="nowhere"),
              entry(model="d", effective_from="yesterday"), entry(model="e(", match="regex"), entry(model="f", colour=1)]
    with pytest.raises(CommandError) as caught:
        run_import(tmp_path, prices)
    message = str(caught.value)
    for expected in ("prices[1].input_per_million", "prices[2].endpoint", "nowhere", "prices[3].effective_from",
                     "prices[4].model", "prices[5].colour"):
        assert expected in message
    assert "prices[0]" not in message
    assert not Price.objects.exists()


def test_two_entries_of_one_file_that_tie_are_refused(tmp_path: Path) -> None:
    make_endpoint(name="ollama", default_model="qwen2.5:7b")
    with pytest.raises(CommandError) as caught:
        run_import(tmp_path, [entry(model="qwen.*", match="regex"), entry(model=".*:7b", match="regex"), entry()])
    assert "prices[1].model" in str(caught.value) and "qwen2.5:7b" in str(caught.value)
    assert not Price.objects.exists()


def test_a_dry_run_counts_and_changes_nothing(tmp_path: Path) -> None:
    output = run_import(tmp_path, [entry(model="a"), entry(model="b")], "--dry-run")
    assert "Dry run" in output and "2 created" in output
    assert not Price.objects.exists()


def test_a_file_that_is_not_a_book_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "book.json"
    for text in ("not json", json.dumps([1, 2]), json.dumps({"format": 2, "prices": []})):
        path.write_text(text)
        with pytest.raises(CommandError):
            call_command("prices", "import", str(path), stdout=StringIO())


def test_the_dated_common_models_file_imports(tmp_path: Path) -> None:
    book = json.loads(COMMON.read_text())
    assert "2026-12-01" in book["note"] and "stale" in book["note"]
    assert 10 <= len(book["prices"]) <= 20
    output = StringIO()
    call_command("prices", "import", str(COMMON), stdout=output)
    assert f"{len(book['prices'])} created" in output.getvalue()
    assert Price.objects.get(model="gpt-4o-mini", endpoint=None).input_per_million == Decimal("0.15")
    call_command("prices", "import", str(COMMON), stdout=output)  # again: nothing new, nothing tied
    assert Price.objects.count() == len(book["prices"])
