"""manage.py rebuild_run_stats: recompute the statistics rollups from the runs (after a restore, say)."""
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand

from runs.rollups import rollups_rebuild


class Command(BaseCommand):
    help = "Recompute the statistics rollups (runs and steps per hour) from every finished run."

    def handle(self, *args: Any, **options: Any) -> None:
        runs, steps = rollups_rebuild(registry=apps)
        self.stdout.write(f"Rebuilt {runs} run rollup rows and {steps} step rollup rows.")
