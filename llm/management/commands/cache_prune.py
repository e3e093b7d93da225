"""manage.py cache_prune [--all]: delete the response cache's expired answers (docs/cache.md)."""
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from llm.cache import cache_prune, cache_purge


class Command(BaseCommand):
    help = "Delete the response cache's expired answers, in short batches (with --all: every answer)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="Delete every cached answer, expired or not.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["all"]:
            self.stdout.write(f"Deleted {cache_purge()} cached answers.")
            return
        self.stdout.write(f"Deleted {cache_prune()} expired cached answers.")
