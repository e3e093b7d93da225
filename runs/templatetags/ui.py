"""Small display helpers shared by the page templates (navigation, durations)."""
from __future__ import annotations

from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()


@register.inclusion_tag("components/nav_link.html", takes_context=True)
def nav_link(context: dict[str, Any], url_name: str, label: str, *also: str) -> dict[str, Any]:
    """A navigation link, marked current on its page and below it; hidden if the page does not exist yet.

    `also` names other URL names that count as this section (the home page is the runs list).
    """
    try:
        url = reverse(url_name)
    except NoReverseMatch:
        # Builder pages arrive later: the bar shows them as soon as their URL names exist.
        return {"url": None}
    request = context.get("request")
    path = request.path if request else ""
    match = getattr(request, "resolver_match", None)
    current = path == url or (url != "/" and path.startswith(url)) or (match is not None and match.url_name in also)
    return {"url": url, "label": label, "current": current}


@register.filter
def duration_ms(value: int | None) -> str:
    """340 -> '340 ms', 1234 -> '1.23 s'; empty for unknown."""
    if value is None or value == "":
        return ""
    value = int(value)
    return f"{value} ms" if value < 1000 else f"{value / 1000:.2f} s"
