"""manage.py promptfoo import FILE [--endpoint PROVIDER=ENDPOINT ...] [--default-endpoint NAME] [--prefix NAME]
[--experiment] | manage.py promptfoo export --experiment ID [--output FILE]: promptfoo interchange
(experiments/promptfoo.py). The import prints what it made and everything it left out or ignored."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from experiments.models import Experiment
from experiments.promptfoo import ImportReport, promptfoo_export, promptfoo_import
from experiments.promptfoo_yaml import MAX_BYTES


def _endpoint_map(pairs: list[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        provider, sep, endpoint = pair.rpartition("=")
        if not sep or not provider or not endpoint:
            raise CommandError(f"--endpoint {pair}: write PROVIDER=ENDPOINT (a provider id or label, an endpoint name).")
        found[provider] = endpoint
    return found


def _problems(error: ValidationError) -> str:
    problems = error.message_dict if hasattr(error, "error_dict") else {"yaml": error.messages}
    return "; ".join(f"{field}: {message}" for field, messages in problems.items() for message in messages)


class Command(BaseCommand):
    help = "Import a promptfooconfig.yaml (blocks, a workflow with a release per prompt x provider, a dataset, " \
           "assertions) or export an experiment as one."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True)
        importing = commands.add_parser("import", help="Import a promptfooconfig.yaml.")
        importing.add_argument("file", type=Path)
        importing.add_argument("--endpoint", action="append", default=[], metavar="PROVIDER=ENDPOINT",
                               help="Run a provider (its id or label) on the endpoint of this name; repeatable.")
        importing.add_argument("--default-endpoint", default="", help="The endpoint of every provider not mapped.")
        importing.add_argument("--prefix", default="", help="The name of the workflow, payload and dataset "
                                                            "(default: the config's description).")
        importing.add_argument("--experiment", action="store_true", help="Start an experiment over every variant.")
        exporting = commands.add_parser("export", help="Export an experiment as a promptfooconfig.yaml.")
        exporting.add_argument("--experiment", type=int, required=True)
        exporting.add_argument("--output", type=Path, help="The file to write (default: standard output).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "import":
            self._import(options)
        else:
            self._export(options)

    def _import(self, options: dict[str, Any]) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        if path.stat().st_size > MAX_BYTES:
            raise CommandError(f"{path} is larger than {MAX_BYTES} bytes.")
        try:
            report = promptfoo_import(path.read_bytes(), endpoint_map=_endpoint_map(options["endpoint"]),
                                      default_endpoint=options["default_endpoint"] or None,
                                      name_prefix=options["prefix"], create_experiment=options["experiment"])
        except ValidationError as error:
            raise CommandError(_problems(error)) from None
        self._print(report)

    def _print(self, report: ImportReport) -> None:
        write = self.stdout.write
        write(f"Workflow “{report.workflow}” (id {report.workflow.pk}) with {len(report.variants)} variants:")
        for variant in report.variants:
            write(f"  release {variant['release'].number} (id {variant['release'].pk}): {variant['name']}")
        write(f"Dataset “{report.dataset}” v{report.dataset_version.number}: {report.dataset_version.row_count} cases.")
        write(f"Experiment assertions (defaultTest): {len(report.assertions)}.")
        if report.experiment is not None:
            write(f"Experiment {report.experiment.pk} started: “{report.experiment.name}”.")
        for entry in report.unsupported:
            write(f"{entry['action'].upper()}: {entry['where']} (line {entry['line']}): {entry['what']}: {entry['reason']}")

    def _export(self, options: dict[str, Any]) -> None:
        experiment = Experiment.objects.select_related("workflow", "dataset_version").filter(
            pk=options["experiment"]).first()
        if experiment is None:
            raise CommandError(f"No experiment {options['experiment']}.")
        try:
            text = promptfoo_export(experiment=experiment)
        except ValidationError as error:
            raise CommandError(_problems(error)) from None
        if options["output"]:
            options["output"].write_text(text, encoding="utf-8")
            self.stdout.write(f"Wrote {options['output']}.")
        else:
            self.stdout.write(text, ending="")
