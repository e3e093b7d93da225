"""manage.py seed_judges --endpoint NAME [--model MODEL]: the default judge workflows."""
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from evaluations.judges import judges_seed
from llm.models import Endpoint


class Command(BaseCommand):
    help = "Create the default judge workflows (judge-rubric, judge-factuality) on an endpoint, if missing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--endpoint", required=True, help="The LLM endpoint the judges call (by name).")
        parser.add_argument("--model", default="", help="The judges' model (default: the endpoint's).")

    def handle(self, *args: Any, endpoint: str, model: str, **options: Any) -> None:
        chosen = Endpoint.objects.filter(name=endpoint).first()
        if chosen is None:
            names = ", ".join(Endpoint.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"--endpoint: no endpoint named “{endpoint}” (there are: {names}).")
        made = judges_seed(endpoint=chosen, model=model)
        self.stdout.write(f"Created {len(made)} judge workflow(s): {', '.join(w.name for w in made) or 'none new'}.")
