"""Searching finished runs by words of their workflow name, inputs, output and error.

The index is the database's own full-text index, kept by the database (runs/migrations/0009):
FTS5 on SQLite, a GIN index on PostgreSQL. A search is words, each matched as a word prefix
("tide" finds "tides"), all of them required; a number also finds the run with that id. Runs
still running are not indexed until they finish.
"""
from __future__ import annotations

import re

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from runs.models import FINAL_STATUSES, Run
from runs.triggers import FINAL, POSTGRES_DOCUMENT

WORDS = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 8



def search_words(text: str) -> list[str]:
    return [word.lower() for word in WORDS.findall(text or "")][:MAX_WORDS]


def _matching(words: list[str]) -> Q:
    if connection.vendor == "postgresql":
        query = " & ".join(f"{word}:*" for word in words)
        # The partial GIN index's own predicate and expression, so the planner uses it.
        return Q(status__in=FINAL_STATUSES) & Q(pk__in=RawSQL(
            f"SELECT id FROM runs_run WHERE status IN {FINAL} AND {POSTGRES_DOCUMENT} @@ to_tsquery('simple', %s)",
            (query,)))
    query = " ".join('"' + word.replace('"', '""') + '"*' for word in words)
    return Q(pk__in=RawSQL("SELECT rowid FROM runs_run_fts WHERE runs_run_fts MATCH %s", (query,)))


def runs_search(runs: QuerySet[Run], text: str) -> QuerySet[Run]:
    """The runs among `runs` matching every word of `text` (or, for a number, that run)."""
    words = search_words(text)
    if not words:
        return runs.none()
    match = _matching(words)
    stripped = (text or "").strip().lstrip("#")
    if stripped.isdigit() and len(stripped) < 18:
        match |= Q(pk=int(stripped))
    return runs.filter(match)
