"""manage.py export_workflow NAME [--with-history] [-o FILE]: the workflow with its payloads, blocks and
endpoint references (never keys) as one JSON document, on stdout or into FILE; --with-history adds
every version of each, oldest first."""
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
        parser.add_argument("--with-history", action="store_true",
                            help="Add every version of the workflow, its payloads and blocks, oldest first.")

    def handle(self, *args: Any, name: str, output: str | None, with_history: bool, **options: Any) -> None:
        workflow = Workflow.objects.filter(name=name).first()
        if workflow is None:
            raise CommandError(f"No workflow named '{name}'.")
        text = json.dumps(workflow_export(workflow, with_history=with_history), indent=2) + "\n"
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stderr.write(f"Wrote '{workflow.name}' to {output}")
        else:
            self.stdout.write(text, ending="")
