"""Which kind of process this is, for start-up work only some processes do."""
from __future__ import annotations


def is_worker(argv: list[str]) -> bool:
    """`manage.py procrastinate worker`: the process that runs jobs in distributed mode."""
    return "procrastinate" in argv[1:3] and "worker" in argv
