"""Searching finished runs by words of their workflow name, inputs, output and error.

The index is the database's own full-text index, kept by the database (runs/migrations/0009):
FTS5 on SQLite, a GIN index on PostgreSQL. A search is words, each matched as a word prefix
("tide" finds "tides"), all of them required; a number also finds the run with that id. Runs
still running are not indexed until they finish.

A search reaches the newest SEARCH_LIMIT matching runs: the index gives them in id order (newest
first) and stops there, so a word found in half a million runs costs what a rare one does, and
nothing counts the matches. Other filters then narrow those; add words to reach older runs.
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
SEARCH_LIMIT = 2000



def search_words(text: str) -> list[str]:
    return [word.lower() for word in WORDS.findall(text or "")][:MAX_WORDS]


def _matching(words: list[str]) -> Q:
    if connection.vendor == "postgresql":
        query = " & ".join(f"{word}:*" for word in words)
        # The partial GIN index's own predicate and expression, so the planner uses it.
        return Q(status__in=FINAL_STATUSES) & Q(pk__in=RawSQL(
            f"SELECT id FROM runs_run WHERE status IN {FINAL} AND {POSTGRES_DOCUMENT} @@ to_tsquery('simple', %s) "
            f"ORDER BY id DESC LIMIT {SEARCH_LIMIT}", (query,)))
    # Two steps: SQLite would otherwise walk the runs' own order and probe every match.
    query = " ".join('"' + word.replace('"', '""') + '"*' for word in words)
    with connection.cursor() as cursor:
        cursor.execute("SELECT rowid FROM runs_run_fts WHERE runs_run_fts MATCH %s ORDER BY rowid DESC "
                       f"LIMIT {SEARCH_LIMIT}", [query])
        return Q(pk__in=[row[0] for row in cursor.fetchall()])


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
