import sys

from django.apps import AppConfig

from core import collector
from core.processes import is_worker


class RunsConfig(AppConfig):
    name = "runs"

    def ready(self) -> None:
        if is_worker(sys.argv):  # a daphne server tunes once its loop runs (runs.engine.executor)
            collector.tune()
