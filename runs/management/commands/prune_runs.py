"""manage.py prune_runs --older-than 90d [--workflow NAME] [--keep-labelled] [--include-experiments] [--dry-run] [--vacuum]"""
import datetime
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from runs.retention import BATCH_SIZE, auto_vacuum_mode, runs_prune, space_reclaim
from workflows.models import Workflow

UNITS = {"d": "days", "h": "hours", "m": "minutes", "w": "weeks"}


def parse_age(text: str) -> datetime.timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([dhmw])\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise CommandError(f"--older-than: “{text}” is not an age like 90d, 12h, 30m or 2w (and not 0).")
    return datetime.timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def _size(value: int | None) -> str:
    return "—" if value is None else f"{value / 1_048_576:.1f} MiB"


class Command(BaseCommand):
    help = "Delete finished runs older than an age, in short batches beside live runs, and reclaim the space."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", required=True, help="An age: 90d, 12h, 30m, 2w.")
        parser.add_argument("--workflow", help="Only this workflow's runs (by name).")
        parser.add_argument("--keep-labelled", action="store_true",
                            help="Keep runs whose release a label (production, ...) points at now.")
        parser.add_argument("--include-experiments", action="store_true",
                            help="Also delete runs that are cells of experiments or that people reviewed (kept "
                                 "otherwise); the cells stay, with their figures, without a link to a run; the "
                                 "reviews go with their runs.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; delete nothing.")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="Runs per transaction.")
        parser.add_argument("--vacuum", action="store_true",
                            help="SQLite: afterwards one full VACUUM (switches an older file to incremental "
                                 "auto-vacuum; rewrites the file, so run it when quiet).")

    def handle(self, *args: Any, older_than: str, workflow: str | None, keep_labelled: bool, include_experiments: bool,
               dry_run: bool, batch_size: int, vacuum: bool, **options: Any) -> None:
        age = parse_age(older_than)
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        chosen = None
        if workflow:
            chosen = Workflow.objects.filter(name=workflow).first()
            if chosen is None:
                raise CommandError(f"No workflow named “{workflow}”.")
        report = runs_prune(older_than=age, workflow=chosen, keep_labelled=keep_labelled,
                            include_kept=include_experiments, dry_run=dry_run, batch_size=batch_size)
        if dry_run:
            self.stdout.write(f"Would delete {report.runs} runs and {report.responses} responses (dry run).")
            return
        if vacuum:
            space_reclaim(full=True)
        self.stdout.write(f"Deleted {report.runs} runs and {report.responses} responses in {report.batches} batches.")
        mode = auto_vacuum_mode()
        if mode is not None:
            self.stdout.write(f"Database: {_size(report.bytes_before)} before, {_size(report.bytes_after)} after.")
            if mode == "none" and not vacuum:
                self.stdout.write("This SQLite file keeps freed pages for reuse; run once with --vacuum to "
                                  "switch it to incremental auto-vacuum and return space to the file system.")
