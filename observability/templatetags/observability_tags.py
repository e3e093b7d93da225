"""The run page's link to the run's trace, when OTEL_TRACE_URL_TEMPLATE says where traces are shown."""
from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html

from observability.trace_ids import trace_url

register = template.Library()


@register.simple_tag
def trace_link(run: Any) -> str:
    url = trace_url(run.pk, run.created_at)
    if not url:
        return ""
    return format_html('<a class="btn btn-quiet" href="{}" id="run-trace" target="_blank" rel="noopener">Trace</a>', url)
