"""`manage.py prices export [--out FILE]` and `manage.py prices import FILE [--dry-run]`: the price book as JSON.

The file: {"format": 1, "exported_at": ..., "prices": [{model, match, endpoint (its name, or null for
every endpoint), effective_from, input_per_million, output_per_million, cached_input_per_million,
reasoning_per_million, currency, note}]}. An import is all or nothing (prices.services.price_import).
"""
import json
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from prices.selectors import price_export
from prices.services import price_import


class Command(BaseCommand):
    help = "Export the price book as JSON, or import one (all entries or none)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        export = actions.add_parser("export", help="Write the book as JSON (to standard output by default).")
        export.add_argument("--out", help="the file to write")
        read = actions.add_parser("import", help="Read a book's JSON; an entry equal to one in the book "
                                                 "(same endpoint, model, match and moment) updates it.")
        read.add_argument("file", help="the JSON file, or - for standard input")
        read.add_argument("--dry-run", action="store_true", help="check and count, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            self._export(options.get("out"))
        else:
            self._import(options["file"], dry_run=options["dry_run"])

    def _export(self, out: str | None) -> None:
        book = price_export()
        text = json.dumps(book, indent=2, ensure_ascii=False) + "\n"
        if out:
            Path(out).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote {len(book['prices'])} price(s) to {out}.")
        else:
            self.stdout.write(text, ending="")

    def _import(self, file: str, *, dry_run: bool) -> None:
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        try:
            report = price_import(data=data, dry_run=dry_run)
        except ValidationError as exc:
            problems = "\n".join(f"  {field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
            raise CommandError(f"Nothing was imported:\n{problems}") from exc
        counted = f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged"
        self.stdout.write(f"Dry run, nothing changed: {counted}." if dry_run else f"Imported: {counted}.")
