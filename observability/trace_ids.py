"""A run's trace id, derived from the run: the same in the process that exports the trace and on the run
page, with nothing stored (and without loading the OpenTelemetry SDK where tracing is off)."""
from __future__ import annotations

import datetime
import hashlib

from django.conf import settings


def trace_id_of(run_id: int, created_at: datetime.datetime) -> int:
    """The run's trace id: the same in every process and on the run page, with nothing stored."""
    moment = created_at.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%S.%f")
    return int.from_bytes(hashlib.sha256(f"llm-orchestrator/run/{run_id}/{moment}".encode()).digest()[:16], "big") or 1


def trace_url(run_id: int, created_at: datetime.datetime) -> str:
    """Where the run's trace is shown (OTEL_TRACE_URL_TEMPLATE), or "" when no template is set."""
    template = settings.OTEL_TRACE_URL_TEMPLATE
    return template.replace("{trace_id}", f"{trace_id_of(run_id, created_at):032x}") if template else ""
