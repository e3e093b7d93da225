"""Searching finished runs by words of their workflow name, inputs, output and error.

The index is the database's own full-text index, kept by the database (runs/migrations/0009):
FTS5 on SQLite, a GIN index on PostgreSQL. A search is words, each matched as a word prefix
("tide" finds "tides"), all of them required; a number also finds the run with that id. Runs
still running are not indexed until they finish.

A search reaches the newest SEARCH_LIMIT matching runs: the index gives them in id order (newest
first) and stops there, so a word found in half a million runs costs what a rare one does, and
nothing counts the matches. Other filters then narrow those; add words to reach older runs.

A GIN index cannot give its matches in id order, so on PostgreSQL the newest runs are searched in
windows of ids, newest first and each WINDOW_GROWTH times the last, until SEARCH_LIMIT are found:
each window is the GIN index's matches ANDed with a range of the primary key, so only the
matches in the window are read from the table (a common word in a million runs: tens of ms, not
the seconds of reading all its matches, nor of the planner's other choice, computing every newest
run's document until enough match). The window query is a materialized CTE so that the planner
cannot trade the index for that per-row computation.
"""
from __future__ import annotations

import re

from django.db import connection
from django.db.models import Q, QuerySet

from runs.models import FINAL_STATUSES, Run
from runs.triggers import FINAL, POSTGRES_DOCUMENT

WORDS = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 8
SEARCH_LIMIT = 2000
FIRST_WINDOW = 50_000  # ids
WINDOW_GROWTH = 4


def search_words(text: str) -> list[str]:
    return [word.lower() for word in WORDS.findall(text or "")][:MAX_WORDS]


# The partial GIN index's own predicate and expression, so the planner uses it.
_POSTGRES_WINDOW = (f"WITH found AS MATERIALIZED (SELECT id FROM runs_run WHERE status IN {FINAL} "
                    f"AND {POSTGRES_DOCUMENT} @@ to_tsquery('simple', %s) AND id >= %s AND id < %s) "
                    "SELECT id FROM found ORDER BY id DESC LIMIT %s")


def _postgres_newest_matches(query: str) -> list[int]:
    ids: list[int] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM runs_run")
        high, window = cursor.fetchone()[0] + 1, FIRST_WINDOW
        while high > 0 and len(ids) < SEARCH_LIMIT:
            low = max(high - window, 0)
            cursor.execute(_POSTGRES_WINDOW, [query, low, high, SEARCH_LIMIT - len(ids)])
            ids += [row[0] for row in cursor.fetchall()]
            high, window = low, window * WINDOW_GROWTH
    return ids


def _postgres_newest_matches_plain(query: str) -> list[int]:
    """What _postgres_newest_matches returns, in one plain query (the tests compare them)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM runs_run WHERE status IN {FINAL} AND {POSTGRES_DOCUMENT} @@ "
                       f"to_tsquery('simple', %s) ORDER BY id DESC LIMIT {SEARCH_LIMIT}", [query])
        return [row[0] for row in cursor.fetchall()]


def _postgres_query(words: list[str]) -> str:
    return " & ".join(f"{word}:*" for word in words)


def _matching(words: list[str]) -> Q:
    if connection.vendor == "postgresql":
        return Q(status__in=FINAL_STATUSES) & Q(pk__in=_postgres_newest_matches(_postgres_query(words)))
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
