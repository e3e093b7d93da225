"""manage.py export_experiment: an experiment's results matrix as CSV or JSONL, streamed to a file or stdout."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from experiments.export import FORMATS, export_lines
from experiments.models import Experiment


class Command(BaseCommand):
    help = "Export an experiment's results (a line per case and repeat, columns per variant) as CSV or JSONL."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("experiment", type=int, metavar="ID", help="the experiment's id")
        parser.add_argument("--format", choices=list(FORMATS), default="csv", help="csv (default) or jsonl")
        parser.add_argument("--output", metavar="FILE", help="write to this file instead of stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        experiment = Experiment.objects.filter(pk=options["experiment"]).first()
        if experiment is None:
            raise CommandError(f"ID: there is no experiment {options['experiment']}.")
        chunks = export_lines(experiment, options["format"])
        if not options["output"]:
            for chunk in chunks:  # each chunk is whole lines of UTF-8
                self.stdout.write(chunk.decode(), ending="")
            return
        try:
            with open(options["output"], "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
        except OSError as exc:
            raise CommandError(f"--output: {exc.strerror}: {options['output']}") from None
        self.stderr.write(f"Experiment {experiment.pk} exported to {options['output']}.")
