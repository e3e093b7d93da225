"""manage.py import_dataset NAME FILE [--format csv|jsonl] [--message ...]: a file's rows as a new
version of the dataset NAME (created if missing), read as the upload reads it, whole or not at all."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from datasets import services
from datasets.importing import FORMATS, cases_read
from datasets.models import Dataset


class Command(BaseCommand):
    help = "Import a CSV or JSONL file as a new version of a dataset (created if missing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", choices=FORMATS, help="By default from the file's suffix.")
        parser.add_argument("--expected-column", default="", help="The column of the expected output (default: expected).")
        parser.add_argument("--message", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        file_format = options["format"] or path.suffix.lstrip(".").lower()
        if file_format not in FORMATS:
            raise CommandError(f"Say --format csv or jsonl: “{path.name}” does not tell.")
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        try:
            with transaction.atomic(), path.open("rb") as binary:
                dataset = Dataset.objects.filter(name=options["name"]).first() or services.dataset_create(
                    name=options["name"])
                cases = cases_read(binary, file_format=file_format, expected_column=options["expected_column"],
                                   max_bytes=path.stat().st_size)
                version, created = services.dataset_version_create(dataset=dataset, cases=cases,
                                                                   message=options["message"])
        except ValidationError as error:
            problems = error.message_dict if hasattr(error, "error_dict") else {"file": error.messages}
            raise CommandError("; ".join(message for found in problems.values() for message in found)) from None
        if created:
            self.stdout.write(f"{dataset.name} v{version.number}: {version.row_count} rows.")
        else:
            self.stdout.write(f"{dataset.name}: unchanged, the content is v{version.number}'s.")
