"""manage.py export_workflow NAME [-o FILE]: the workflow with its payloads, blocks and endpoint
references (never keys) as one JSON document, on stdout or into FILE."""
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workflows.models import Workflow
from workflows.portability import workflow_export


class Command(BaseCommand):
    help = "Export a workflow (with its payloads, blocks and endpoint references, never keys) as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The workflow's name.")
        parser.add_argument("-o", "--output", help="Write to this file instead of stdout.")

    def handle(self, *args: Any, name: str, output: str | None, **options: Any) -> None:
        workflow = Workflow.objects.filter(name=name).first()
        if workflow is None:
            raise CommandError(f"No workflow named '{name}'.")
        text = json.dumps(workflow_export(workflow), indent=2) + "\n"
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote '{workflow.name}' to {output}")
        else:
            self.stdout.write(text, ending="")
