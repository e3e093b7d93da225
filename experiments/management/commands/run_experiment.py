"""manage.py run_experiment: start an experiment (or attach to one) and drive it to its end, with a
progress bar, or JSON lines for scripts. Exit 0: finished with no failed cell; 1: some failed;
2: cancelled or stopped by its budget."""
from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from datasets.models import Dataset, DatasetVersion
from datasets.selectors import dataset_version
from evaluations.models import Evaluation, Score
from evaluations.work import evaluations_work
from experiments import driver, events, services
from experiments.models import Experiment, ExperimentStatus
from experiments.selectors import VariantScore, variant_scores, variant_summaries
from llm import client as llm
from runs.engine import execute_run, new_owner
from runs.models import ACTIVE_STATUSES, CacheMode, Run
from workflows.models import Workflow

EXIT_FAILED_CELLS, EXIT_STOPPED, EXIT_BELOW_BAR = 1, 2, 3
SCORING_POLL_SECONDS = 0.5
WATCH_SECONDS = 1.0  # distributed mode: how often the database is read for progress
CREATE_OPTIONS = ("workflow", "dataset", "version", "variant", "map", "repeats", "concurrency", "budget", "currency",
                  "assertions",
                  "name", "cache_mode")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


def progress_line(event: dict[str, Any], width: int = 24) -> str:
    """One line of progress: a bar, done/failed/running/queued, pace, ETA and cost."""
    cells = event["cells"] or 1
    filled = round(width * event["done"] / cells)
    parts = [f"[{'#' * filled}{'.' * (width - filled)}] {event['done']}/{event['cells']} done",
             f"{event['failed']} failed", f"{event['running']} running", f"{event['queued']} queued",
             f"{event['cells_per_second']:.1f} cells/s"]
    if event["status"] == ExperimentStatus.RUNNING:
        parts.append(f"ETA {_duration(event['eta_seconds'])}")
    else:
        parts.append(event["status"])
    parts.append(event["cost"] + (f" of {event['budget']}" if event["budget"] else ""))
    return " · ".join(parts)


class ProgressView:
    """Progress as it comes: redrawn in place on a terminal, a line every few seconds otherwise, or
    JSON lines (--json)."""

    def __init__(self, out: Any, *, json_lines: bool) -> None:
        self.out, self.json_lines = out, json_lines
        self.tty = not json_lines and out.isatty()
        self.every = 1.0 if json_lines else 0.1 if self.tty else 5.0
        self.shown_at: float | None = None
        self.last: dict[str, Any] | None = None

    def show(self, event: dict[str, Any], *, final: bool = False) -> None:
        now = time.monotonic()
        if final and event == self.last:
            return
        if not final and self.shown_at is not None and now - self.shown_at < self.every:
            return
        self.shown_at, self.last = now, event
        if self.json_lines:
            self.out.write(json.dumps(event))
        elif self.tty:
            self.out.write("\r" + progress_line(event) + "\x1b[K", ending="\n" if final else "")
            self.out.flush()
        else:
            self.out.write(progress_line(event))


def _option(key: str) -> str:
    """The command-line option a service's error key is about."""
    found = re.match(r"variants\[(\d+)\]", key)
    if found:
        return f"--variant #{int(found[1]) + 1}"
    if key.startswith("mapping."):
        return f"--map {key.removeprefix('mapping.')}"
    return {"budget_currency": "--currency", "dataset_version": "--dataset", "variants": "--variant",
            "mapping": "--map", "status": "--experiment"}.get(key, f"--{key}")


def _assertions(text: str | None) -> Any:
    if not text:
        return None
    try:
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as source:
                return json.load(source)
        return json.loads(text)
    except OSError as exc:
        raise CommandError(f"--assertions: cannot read {text[1:]}: {exc.strerror}.") from None
    except ValueError as exc:
        raise CommandError(f"--assertions: not JSON ({exc}).") from None


def _variant(text: str) -> dict[str, Any]:
    kind, _, value = text.partition(":")
    if text == "current":
        return {"current": True}
    if kind == "release" and value.isdigit():
        return {"release": int(value)}
    if kind == "label" and value:
        return {"label": value}
    raise CommandError(f"--variant: “{text}” is none of release:ID, label:NAME or current.")


def _mapping(items: list[str]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for item in items:
        if "==" in item:
            name, _, value = item.partition("==")
            target: dict[str, Any] = {"value": value}
        else:
            name, _, column = item.partition("=")
            target = {"column": column}
        if not name or not (target.get("column") or "value" in target):
            raise CommandError(f"--map: “{item}” is neither input=column nor input==constant.")
        mapping[name] = target
    return mapping


def _by_name(model: type[Any], given: str, option: str) -> Any:
    found = model.objects.filter(name=given).first()
    if found is None and given.isdigit():
        found = model.objects.filter(pk=int(given)).first()
    if found is None:
        raise CommandError(f"{option}: there is no {model._meta.verbose_name} named “{given}”.")
    return found


class Command(BaseCommand):
    help = ("Run an experiment to its end: create one (--workflow, --dataset, --variant ...) or attach to one "
            "(--experiment ID). Ctrl-C cancels it. Exit 0: no failed cell; 1: some failed; 2: cancelled or budget.")

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --version is the dataset's version here, not Django's.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--experiment", type=int, metavar="ID", help="drive this existing experiment")
        parser.add_argument("--workflow", metavar="NAME", help="the workflow's name (or id)")
        parser.add_argument("--dataset", metavar="NAME", help="the dataset's name (or id)")
        parser.add_argument("--version", type=int, metavar="N", help="the dataset's version; the latest by default")
        parser.add_argument("--variant", action="append", default=[], metavar="release:ID|label:NAME|current",
                            help="a variant; repeat for each")
        parser.add_argument("--map", action="append", default=[], metavar="INPUT=COLUMN|INPUT==CONSTANT",
                            help="where an input comes from; by default the column of its name")
        parser.add_argument("--repeats", type=int, metavar="N", help="runs per case and variant")
        parser.add_argument("--concurrency", type=int, metavar="N", help="cells at once")
        parser.add_argument("--budget", metavar="AMOUNT", help="stop when the cells have cost this much")
        parser.add_argument("--currency", metavar="USD", help="the budget's currency")
        parser.add_argument("--name", metavar="NAME", help="the experiment's name")
        cache = parser.add_mutually_exclusive_group()
        cache.add_argument("--cache", dest="cache_mode", action="store_const", const=CacheMode.USE.value,
                           help="use the response cache for every step of every cell (default: as each payload says)")
        cache.add_argument("--no-cache", dest="cache_mode", action="store_const", const=CacheMode.OFF.value,
                           help="call the LLM for every step of every cell, whatever the payloads say")
        parser.add_argument("--assertions", metavar="JSON|@FILE",
                            help="the experiment's assertions: a JSON list, or @path of a file holding one")
        parser.add_argument("--fail-under", type=float, metavar="RATE",
                            help="exit 3 when a variant's pass rate (0 to 1) is below this, once scored")
        parser.add_argument("--json", action="store_true", help="print JSON lines: progress events, then a summary")

    def handle(self, *args: Any, **options: Any) -> None:
        bar = options["fail_under"]
        if bar is not None and not 0 <= bar <= 1:
            raise CommandError("--fail-under: a pass rate from 0 to 1.")
        if options["experiment"] is not None:
            given = [name for name in CREATE_OPTIONS if options[name] not in (None, [])]
            if given:
                raise CommandError(f"--experiment attaches to an existing experiment: leave out --{given[0]}.")
            experiment = Experiment.objects.filter(pk=options["experiment"]).first()
            if experiment is None:
                raise CommandError(f"--experiment: there is no experiment {options['experiment']}.")
        else:
            experiment = self._create(options)
        view = ProgressView(self.stdout, json_lines=options["json"])
        if not options["json"]:
            self.stderr.write(f"Experiment {experiment.pk} “{experiment}”: {experiment.cell_count} cells.")
        self.cancelled = False
        self._drive_to_end(experiment.pk, view)
        experiment = Experiment.objects.get(pk=experiment.pk)
        scores = self._scores(experiment) if bar is not None else None
        self._finish(experiment, view, options["json"], scores, bar)

    def _create(self, options: dict[str, Any]) -> Experiment:
        for name in ("workflow", "dataset"):
            if not options[name]:
                raise CommandError(f"--{name}: name the {name} (or attach to an experiment with --experiment ID).")
        if not options["variant"]:
            raise CommandError("--variant: give at least one (release:ID, label:NAME or current).")
        workflow = _by_name(Workflow, options["workflow"], "--workflow")
        dataset = _by_name(Dataset, options["dataset"], "--dataset")
        version: DatasetVersion | None = dataset_version(dataset, options["version"])
        if version is None:
            raise CommandError(f"--version: the dataset “{dataset}” has no version {options['version']}."
                               if options["version"] else f"--dataset: “{dataset}” has no version yet.")
        try:
            return services.experiment_create(
                name=options["name"] or f"{workflow} on {dataset} v{version.number}", workflow=workflow,
                dataset_version=version, variants=[_variant(text) for text in options["variant"]],
                mapping=_mapping(options["map"]), repeats=1 if options["repeats"] is None else options["repeats"],
                concurrency=10 if options["concurrency"] is None else options["concurrency"],
                budget=options["budget"], budget_currency=options["currency"],
                assertions=_assertions(options["assertions"]), cache_mode=options["cache_mode"])
        except ValidationError as exc:
            raise CommandError("; ".join(f"{_option(key)}: {message}" for key, messages in exc.message_dict.items()
                                         for message in messages)) from None

    def _drive(self, experiment_id: int, view: ProgressView) -> None:
        if settings.RUNS_BACKEND == "embedded":
            asyncio.run(self._drive_here(experiment_id, view))
            return
        # Distributed: a worker drives it (experiments.drive); this process watches the database.
        woken = False
        while True:
            experiment = Experiment.objects.get(pk=experiment_id)
            view.show(events.progress(experiment))
            if experiment.is_finished:
                return
            if not woken:
                driver.wake(experiment_id)
                woken = True
            time.sleep(WATCH_SECONDS)

    def _drive_to_end(self, experiment_id: int, view: ProgressView) -> None:
        while True:
            try:
                self._drive(experiment_id, view)
                return
            except KeyboardInterrupt:
                if self.cancelled:
                    self.stderr.write(f"\nInterrupted again: leaving experiment {experiment_id} to stop without "
                                      "this process.")
                    sys.exit(EXIT_STOPPED)
                self._cancel(experiment_id)

    def _cancel(self, experiment_id: int) -> None:
        self.cancelled = True
        services.experiment_cancel(experiment=Experiment.objects.get(pk=experiment_id))
        self.stderr.write(f"\nInterrupted: experiment {experiment_id} cancelled; waiting for its running cells to stop.")

    async def _drive_here(self, experiment_id: int, view: ProgressView) -> None:
        loop = asyncio.get_running_loop()
        cancelling: list[asyncio.Future[None]] = []

        def interrupted() -> None:
            # The first Ctrl-C cancels while this loop still executes the cells' runs, so they end
            # cancelled at once; a second one interrupts for good.
            loop.remove_signal_handler(signal.SIGINT)
            cancelling.append(asyncio.ensure_future(sync_to_async(self._cancel, thread_sensitive=False)(experiment_id)))

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            loop.add_signal_handler(signal.SIGINT, interrupted)
        try:
            await driver.drive_here(experiment_id, on_tick=view.show)
            await asyncio.gather(*cancelling)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGINT)
            await llm.aclose_all()  # the pooled clients belong to this loop

    def _scores(self, experiment: Experiment) -> dict[int, VariantScore]:
        """The experiment's pass rates once its current evaluation is scored: here in embedded mode (with
        its judges' runs), by the workers in distributed mode."""
        if experiment.evaluation_id is None:
            raise CommandError("--fail-under: the experiment has no assertions to score (--assertions).")
        if settings.RUNS_BACKEND == "embedded":
            asyncio.run(_score_here(experiment.evaluation_id))
        while Evaluation.objects.get(pk=experiment.evaluation_id).status not in ("done", "failed"):
            time.sleep(SCORING_POLL_SECONDS)
        return variant_scores(experiment)

    def _finish(self, experiment: Experiment, view: ProgressView, json_lines: bool,
                scores: dict[int, VariantScore] | None = None, bar: float | None = None) -> None:
        progress = events.progress(experiment)
        view.show(progress, final=True)
        summaries = variant_summaries(experiment)
        if json_lines:
            variants = [{**summary.as_json(), **({"scores": scores.get(summary.variant.pk, VariantScore()).as_json()}
                                                 if scores is not None else {})} for summary in summaries]
            self.stdout.write(json.dumps({**progress, "type": "experiment.summary", "variants": variants}))
        else:
            for s in summaries:
                rate = "—" if s.success_rate is None else f"{s.success_rate:.0%}"
                self.stdout.write(f"  {s.variant.name}: {s.succeeded}/{s.cells} succeeded ({rate}), "
                                  f"median {s.median_latency_ms or '—'} ms, p95 {s.p95_latency_ms or '—'} ms, "
                                  f"{s.prompt_tokens + s.completion_tokens} tokens, {s.cost_text}")
                if scores is not None:
                    self.stdout.write(f"    {_pass_rate_text(scores.get(s.variant.pk, VariantScore()))}")
        if experiment.status in (ExperimentStatus.CANCELLED, ExperimentStatus.BUDGET_REACHED):
            self.stderr.write(f"Experiment {experiment.pk} {experiment.get_status_display().lower()}.")
            sys.exit(EXIT_STOPPED)
        if experiment.failed:
            self.stderr.write(f"Experiment {experiment.pk} finished with {experiment.failed} failed cell(s).")
            sys.exit(EXIT_FAILED_CELLS)
        if scores is not None and bar is not None:
            below = [s.variant.name for s in summaries
                     if (scores.get(s.variant.pk, VariantScore()).pass_rate or 0.0) < bar]
            if below:
                self.stderr.write(f"Pass rate under {bar:g}: {', '.join(below)}.")
                sys.exit(EXIT_BELOW_BAR)


def _pass_rate_text(score: VariantScore) -> str:
    if score.pass_rate is None:
        return f"no pass rate ({score.errors} errors)" if score.errors else "no pass rate"
    low, high = score.interval or (0.0, 0.0)
    return (f"pass rate {score.pass_rate:.0%} (95 % interval {low:.0%} to {high:.0%}), {score.passed} passed, "
            f"{score.failed} failed, {score.errors} errors")


async def _score_here(evaluation_id: int) -> None:
    """Score the evaluation in this process, executing the judges' runs it starts, until it is done."""
    work = sync_to_async(evaluations_work, thread_sensitive=False)
    try:
        while True:
            await work(owner=new_owner("cli:evaluations:"))
            status, judges = await sync_to_async(_judging, thread_sensitive=False)(evaluation_id)
            if status in ("done", "failed"):
                return
            await asyncio.gather(*(execute_run(run_id) for run_id in judges))
            if not judges:
                await asyncio.sleep(SCORING_POLL_SECONDS)
    finally:
        await llm.aclose_all()


def _judging(evaluation_id: int) -> tuple[str, list[int]]:
    """The evaluation's status, and its judges' runs still to run."""
    status = Evaluation.objects.values_list("status", flat=True).get(pk=evaluation_id)
    run_ids = {run_id for judges in Score.objects.filter(evaluation_id=evaluation_id, outcome="judging")
               .values_list("judges", flat=True) for run_id in judges.values() if isinstance(run_id, int)}
    return status, list(Run.objects.filter(pk__in=run_ids, status__in=ACTIVE_STATUSES).values_list("pk", flat=True))
