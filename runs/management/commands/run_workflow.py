import asyncio
import json
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from llm import client as llm
from runs import selectors, services
from runs.engine import Claim, Finished, dbthread, events, execute_run, new_owner
from runs.models import CacheMode
from runs.serializers import RunSerializer
from workflows.models import Workflow


def progress_line(event: dict[str, Any]) -> str:
    """One line of progress for a step event. Steps may run side by side and a map step runs once per
    item, so each line names its step (and item): "[3] checked item 2/20 done: 12 tokens, 300 ms"."""
    kind = event["type"]
    if kind not in ("step.started", "step.completed", "step.failed", "step.skipped"):
        return ""
    item = event.get("item") or 0
    where = f"[{event['index'] + 1}]" + (f" {event['output_key']}" if event.get("output_key") else "")
    if item:
        where += f" item {item}" + (f"/{event['item_count']}" if event.get("item_count") else "")
    if kind == "step.started":
        total = f"[{event['index'] + 1}/{event['step_count']}]" if event.get("step_count") else f"[{event['index'] + 1}]"
        return f"{total}{where[where.index(']') + 1:]} ({event.get('payload', '')}) ..."
    if kind == "step.completed" and event.get("cache_status") == "hit":
        return f"{where} cached: saved {event['cache_saved_completion_tokens']} tokens, {event['latency_ms']} ms"
    if kind == "step.completed":
        return f"{where} done: {event['completion_tokens']} tokens, {event['latency_ms']} ms"
    if kind == "step.failed":
        return f"{where} failed: {event['error']}"
    if kind == "step.skipped":
        return f"{where} skipped (its condition was false): output {event.get('output', '')!r}"
    return ""


class Command(BaseCommand):
    help = "Run a workflow in this process, showing progress step by step, and print its output."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("workflow", help="the workflow's name (or id)")
        parser.add_argument("--input", action="append", default=[], metavar="NAME=VALUE", help="repeat for each input")
        parser.add_argument("--label", default="", metavar="LABEL",
                            help="run the release this label (production, staging, ...) points at, not the tree as it stands")
        parser.add_argument("--json", action="store_true", help="print the whole run as JSON instead")
        cache = parser.add_mutually_exclusive_group()
        cache.add_argument("--cache", dest="cache_mode", action="store_const", const=CacheMode.USE.value,
                           help="use the response cache for every step (default: as each payload says)")
        cache.add_argument("--no-cache", dest="cache_mode", action="store_const", const=CacheMode.OFF.value,
                           help="call the LLM for every step, whatever the payloads say")

    def handle(self, *args: Any, **options: Any) -> None:
        workflow = Workflow.objects.filter(name=options["workflow"]).first()
        if workflow is None and options["workflow"].isdigit():
            workflow = Workflow.objects.filter(pk=int(options["workflow"])).first()
        if workflow is None:
            raise CommandError(f"No workflow named '{options['workflow']}'.")
        inputs = {}
        for item in options["input"]:
            name, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--input must be NAME=VALUE, got '{item}'.")
            inputs[name] = value
        quiet = options["json"]
        try:
            run_id = asyncio.run(self._start_and_execute(workflow, inputs, quiet=quiet, label=options["label"],
                                                         cache_mode=options["cache_mode"]))
        except ValidationError as exc:
            raise CommandError("; ".join(m for ms in exc.message_dict.values() for m in ms)) from exc
        run = selectors.run_detail(run_id)
        if quiet:
            self.stdout.write(json.dumps(RunSerializer(run).data, indent=2, default=str))
        elif run.status == "succeeded":
            self.stdout.write(run.output)
        if run.status != "succeeded":
            self.stderr.write(f"Run {run.pk} {run.status}: {run.error}")
            sys.exit(1)

    async def _start_and_execute(self, workflow: Workflow, inputs: dict[str, str], *, quiet: bool, label: str = "",
                                 cache_mode: str | None = None) -> int:
        # This process runs the run: its first step is claimed as it starts, no executor is asked.
        owner = new_owner("cli:")
        try:
            run, claim = await dbthread.call(services.run_start_claimed, workflow=workflow, inputs=inputs,
                                             user=None, owner=owner, label=label, cache_mode=cache_mode)
            await self._execute(run.pk, owner=owner, claim=claim, quiet=quiet)
        finally:
            await llm.aclose_all()
        return run.pk

    async def _execute(self, run_id: int, *, owner: str, claim: Claim | Finished | None, quiet: bool) -> str | None:
        def show(event: dict[str, Any]) -> None:
            if not quiet:
                line = progress_line(event)
                if line:
                    self.stderr.write(line)

        unsubscribe = events.subscribe(run_id, show)
        try:
            return await execute_run(run_id, owner=owner, claim=claim)
        finally:
            unsubscribe()
