"""manage.py import_workflow FILE: import an export (with or without history), reusing identical blocks
and payloads, and say what was created and what was reused. A missing endpoint is an error unless --create-missing-endpoints
(then it is created disabled and without a key)."""
import json
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows.portability import workflow_import


class Command(BaseCommand):
    help = "Import a workflow exported with export_workflow (or the API); '-' reads stdin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The export file, or - for stdin.")
        parser.add_argument("--create-missing-endpoints", action="store_true",
                            help="Create endpoints this installation lacks, disabled and without a key.")

    def handle(self, *args: Any, file: str, create_missing_endpoints: bool, **options: Any) -> None:
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
            document = json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        try:
            report = workflow_import(document=document, create_missing_endpoints=create_missing_endpoints)
        except ValidationError as exc:
            problems = exc.message_dict if hasattr(exc, "error_dict") else {"document": exc.messages}
            raise CommandError("; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in problems.items())) from exc
        for line in report.lines():
            self.stdout.write(line)
        summary = report.as_dict()
        self.stdout.write(f"Workflow '{report.workflow.name}' (id {report.workflow.pk}): "
                          f"{summary['created']} created, {summary['reused']} reused.")
