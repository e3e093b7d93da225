"""manage.py reprice [--since DATE] [--until DATE] [--model REGEX] [--workflow NAME] [--dry-run] [--batch N]

Without --dry-run it applies in batches as a job (runs.reprice); killed, running it again with the same
selection resumes that job after its last committed batch.
"""
from __future__ import annotations

import datetime
import time
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import dateparse, timezone

from runs.models import RepriceJob
from runs.reprice import (
    BATCH_SIZE,
    PAUSE_SECONDS,
    reprice_job_claim,
    reprice_job_create,
    reprice_job_run,
    reprice_job_totals,
    reprice_job_unfinished,
    reprice_plan,
    reprice_scope,
)


def parse_moment(text: str | None, option: str) -> datetime.datetime | None:
    """A date (midnight) or an ISO date-time; without a zone, in the server's time zone."""
    if not text:
        return None
    moment = dateparse.parse_datetime(text)
    if moment is None:
        day = dateparse.parse_date(text)
        if day is None:
            raise CommandError(f"{option}: “{text}” is not a date like 2026-11-30 or 2026-11-30T12:00.")
        moment = datetime.datetime.combine(day, datetime.time())
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def totals_lines(before: dict[str, Decimal], after: dict[str, Decimal], unpriced_before: int,
                 unpriced_after: int) -> list[str]:
    """Old -> new per currency (never added across currencies), then the steps with no known cost."""
    lines = [f"  {currency}: {before.get(currency, Decimal(0))} -> {after.get(currency, Decimal(0))}"
             for currency in sorted(set(before) | set(after))]
    lines.append(f"  + {unpriced_before} unpriced -> + {unpriced_after} unpriced")
    return lines


class Command(BaseCommand):
    help = "Price past steps again by the price book as it stands (after adding or correcting a price)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="Steps created at or after this date (2026-11-30 or an ISO date-time).")
        parser.add_argument("--until", help="Steps created before this date.")
        parser.add_argument("--model", default="", help="A regular expression the whole model name matches.")
        parser.add_argument("--workflow", default="", help="Only runs of this workflow (by name).")
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; change nothing.")
        parser.add_argument("--batch", type=int, default=BATCH_SIZE, help="Steps per transaction.")
        parser.add_argument("--pause", type=float, default=PAUSE_SECONDS,
                            help="Seconds between batches, so live runs' commits get in between.")

    def handle(self, *args: Any, since: str | None, until: str | None, model: str, workflow: str, dry_run: bool,
               batch: int, pause: float, **options: Any) -> None:
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        try:
            scope = reprice_scope(since=parse_moment(since, "--since"), until=parse_moment(until, "--until"),
                                  model=model, workflow=workflow)
        except ValidationError as exc:
            raise CommandError(" ".join(f"--{name}: {' '.join(messages)}"
                                        for name, messages in exc.message_dict.items())) from exc
        if dry_run:
            plan = reprice_plan(scope=scope, batch_size=batch)
            self.stdout.write(f"Steps examined: {plan.examined}, would change: {plan.changed} (dry run).")
            self.stdout.write("\n".join(totals_lines(plan.totals_before, plan.totals_after, plan.unpriced_before,
                                                     plan.unpriced_after)))
            return
        job = reprice_job_unfinished(scope=scope)
        if job is not None:
            self.stdout.write(f"Resuming reprice job #{job.pk} after step id {job.last_response_id}.")
        else:
            job = reprice_job_create(scope=scope, batch_size=batch)
        job = self._apply(job, pause)
        if job.status == RepriceJob.Status.FAILED:
            raise CommandError(f"Reprice job #{job.pk} failed: {job.error}")
        before, after = reprice_job_totals(job)
        self.stdout.write(f"Steps examined: {job.examined}, changed: {job.changed} (job #{job.pk}).")
        self.stdout.write("\n".join(totals_lines(before, after, job.unpriced_before, job.unpriced_after)))

    def _apply(self, job: RepriceJob, pause: float) -> RepriceJob:
        """Claim the job (waiting for a dead holder's lease to run out) and run it to the end."""
        owner = f"command:{job.pk}:{time.monotonic_ns()}"
        told = False
        while not reprice_job_claim(job.pk, owner=owner):
            job.refresh_from_db()
            if job.is_finished:
                return job
            if not told:
                self.stdout.write(f"Job #{job.pk} is held by {job.lease_owner} until {job.lease_expires_at:%H:%M:%S}; "
                                  "waiting (it resumes here if that holder is gone).")
                told = True
            time.sleep(0.5)
        return reprice_job_run(job.pk, owner=owner, pause=pause)
