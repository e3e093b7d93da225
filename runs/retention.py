"""Deleting old runs beside live ones, and giving the space back to the file system.

Runs go in batches, each its own short transaction, so the write lock is never held for long: on
SQLite a live run's step commit waits at most one batch. Within a batch, first the pointers from
other runs into it are cleared (a replay's source, a copied response's origin), then its responses
and runs are deleted with one DELETE each. Only finished runs are pruned.

Space: on SQLite, freed pages are handed back with incremental vacuum when the file was created
with auto_vacuum=INCREMENTAL (new databases are: see orchestrator/settings.py); an older file is
switched by one full VACUUM (`prune_runs --vacuum`). PostgreSQL reuses freed space by autovacuum.
"""
from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.internals.django_raw_delete import raw_delete
from llm.cache import cache_prune
from releases.models import Label
from runs.models import FINAL_STATUSES, Response, Run
from workflows.models import Workflow

BATCH_SIZE = 500


@dataclass(frozen=True)
class Keeper:
    """Runs another app points at (an experiment's cells): `kept()` is a queryset of their ids, which a
    prune leaves alone unless asked to include them; then `let_go(ids)` clears its pointers first."""

    name: str
    kept: Callable[[], QuerySet[Any]]
    let_go: Callable[[list[int]], None]


# Registered at start-up by the apps above runs (runs imports none of them).
keepers: list[Keeper] = []


def keeper_add(keeper: Keeper) -> None:
    if all(k.name != keeper.name for k in keepers):
        keepers.append(keeper)
PAUSE_SECONDS = 0.05  # between batches: live runs' commits get the write lock in between
VACUUM_PAGES = 2000  # pages handed back per incremental vacuum statement (each a short write)


@dataclass
class PruneReport:
    runs: int = 0
    responses: int = 0
    batches: int = 0
    dry_run: bool = False
    bytes_before: int | None = None
    bytes_after: int | None = None

    @property
    def bytes_returned(self) -> int | None:
        if self.bytes_before is None or self.bytes_after is None:
            return None
        return self.bytes_before - self.bytes_after


def prune_candidates(*, older_than: datetime.timedelta, workflow: Workflow | None = None,
                     keep_labelled: bool = False, include_kept: bool = False) -> QuerySet[Run]:
    """Finished runs created before now - older_than; with keep_labelled, not those whose release a
    label points at now; unless include_kept, not those a keeper keeps (experiments' cells)."""
    runs = Run.objects.filter(status__in=FINAL_STATUSES, created_at__lt=timezone.now() - older_than)
    if workflow is not None:
        runs = runs.filter(workflow=workflow)
    if keep_labelled:
        runs = runs.exclude(release_id__in=Label.objects.values("release_id"))
    if not include_kept:
        for keeper in keepers:
            runs = runs.exclude(pk__in=keeper.kept())
    return runs


def _delete_batch(ids: list[int]) -> int:
    with transaction.atomic():
        for keeper in keepers:
            keeper.let_go(ids)
        Response.objects.filter(copied_from__run_id__in=ids).exclude(run_id__in=ids).update(copied_from=None)
        Run.objects.filter(source_run_id__in=ids).exclude(pk__in=ids).update(source_run=None)
        responses = raw_delete(Response.objects.filter(run_id__in=ids))
        raw_delete(Run.objects.filter(pk__in=ids))
    return responses


def runs_prune(*, older_than: datetime.timedelta, workflow: Workflow | None = None, keep_labelled: bool = False,
               include_kept: bool = False, dry_run: bool = False, batch_size: int = BATCH_SIZE,
               pause: float = PAUSE_SECONDS, reclaim: bool = True) -> PruneReport:
    candidates = prune_candidates(older_than=older_than, workflow=workflow, keep_labelled=keep_labelled,
                                  include_kept=include_kept)
    if dry_run:
        return PruneReport(runs=candidates.count(), responses=Response.objects.filter(run__in=candidates).count(),
                           dry_run=True)
    report = PruneReport(bytes_before=database_bytes())
    while True:
        ids = list(candidates.order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        report.responses += _delete_batch(ids)
        report.runs += len(ids)
        report.batches += 1
        time.sleep(pause)
    if reclaim:
        space_reclaim()
    report.bytes_after = database_bytes()
    return report


def scheduled_prune() -> PruneReport | None:
    """The hourly prune both executors call: RUNS_PRUNE_OLDER_THAN_DAYS (0: off)."""
    days = settings.RUNS_PRUNE_OLDER_THAN_DAYS
    if days <= 0:
        return None
    return runs_prune(older_than=datetime.timedelta(days=days), keep_labelled=not settings.RUNS_PRUNE_LABELLED)


def scheduled_prune_in_thread() -> PruneReport | None:
    """scheduled_prune on a worker thread of the executors, whose connection may have gone stale; the
    response cache's expired answers go at the same hour, whatever the runs' retention."""
    close_old_connections()
    try:
        cache_prune()
        return scheduled_prune()
    finally:
        close_old_connections()


def _sqlite_files() -> list[str]:
    name = str(connection.settings_dict["NAME"])
    return [path for path in (name, f"{name}-wal") if os.path.exists(path)]


def database_bytes() -> int | None:
    """The SQLite database's size on disk (file and WAL); None on PostgreSQL or in memory."""
    if connection.vendor != "sqlite" or connection.is_in_memory_db():
        return None
    return sum(os.path.getsize(path) for path in _sqlite_files())


def _pragma(cursor: Any, statement: str) -> Any:
    cursor.execute(f"PRAGMA {statement}")
    row = cursor.fetchone()
    return row[0] if row else None


def space_reclaim(*, full: bool = False) -> None:
    """Hand freed pages back to the file system (SQLite). `full`: one VACUUM, which also switches an
    older file to incremental auto-vacuum (it rewrites the whole file: run it in a quiet moment)."""
    if connection.vendor != "sqlite" or connection.is_in_memory_db() or connection.in_atomic_block:
        return  # inside a transaction the pages are not free yet (and SQLite refuses to checkpoint)
    with connection.cursor() as cursor:
        if full:
            cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")
            cursor.execute("VACUUM")
        elif _pragma(cursor, "auto_vacuum") == 2:  # INCREMENTAL
            while _pragma(cursor, "freelist_count"):
                cursor.execute(f"PRAGMA incremental_vacuum({VACUUM_PAGES})")
                cursor.fetchall()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.fetchall()


def auto_vacuum_mode() -> str | None:
    if connection.vendor != "sqlite":
        return None
    with connection.cursor() as cursor:
        return {0: "none", 1: "full", 2: "incremental"}.get(_pragma(cursor, "auto_vacuum"), "unknown")
