"""Small display helpers shared by the page templates: the grouped navigation, breadcrumbs, icons, durations."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django import template
from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

ICONS_DIR = settings.BASE_DIR / "static" / "vendor" / "lucide-static-1.62.0" / "icons"


@dataclass(frozen=True)
class NavItem:
    """One destination; `also` names other URL names that count as this page (the home page is the runs list)."""

    url_name: str
    label: str
    icon: str
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class NavGroup:
    key: str
    label: str
    icon: str
    items: tuple[NavItem, ...]


# Grouped by what people do. A URL name that does not exist (yet) is skipped, and so is a group left empty:
# evaluation-list appears as soon as their pages land.
NAV_GROUPS = (
    NavGroup("build", "Build", "hammer", (
        NavItem("block-manager", "Blocks", "blocks", ("block-edit", "block-new")),
        NavItem("payload-builder", "Payloads", "package", ("payload-edit", "payload-new")),
        NavItem("workflow-builder", "Workflows", "workflow", ("workflow-edit", "workflow-new", "workflow-import")),
    )),
    NavGroup("run", "Run", "play", (
        NavItem("run-list", "Runs", "list-checks", ("home", "run-detail", "run-compare", "run-stats", "run-replay")),
        NavItem("run-pick", "Run a workflow", "play", ("run-start",)),
    )),
    NavGroup("evaluate", "Evaluate", "flask-conical", (
        NavItem("datasets:list", "Datasets", "list-checks", ("datasets:detail",)),
        NavItem("experiments:list", "Experiments", "flask-conical",
                ("experiments:detail", "experiments:new", "experiments:compare")),
        NavItem("evaluation-list", "Evaluations", "list-checks"),
    )),
    NavGroup("settings", "Settings", "settings", (
        NavItem("endpoint-list", "Endpoints", "server"),
        NavItem("llm-tester", "LLM Tester", "message-square"),
        NavItem("prices:list", "Prices", "settings", ("prices:create", "prices:edit", "prices:delete")),
    )),
)
HELP_ITEMS = (
    NavItem("admin:index", "Admin", "shield"),
    NavItem("swagger-ui", "API docs", "book-open"),
)


def _url_or_none(url_name: str) -> str | None:
    try:
        return reverse(url_name)
    except NoReverseMatch:
        return None


def _is_current(request: HttpRequest | None, item: NavItem, url: str) -> bool:
    path = request.path if request else ""
    match = getattr(request, "resolver_match", None)
    url_name = match.view_name if match is not None else None
    return path == url or (url != "/" and path.startswith(url)) or url_name in (item.url_name, *item.also)


def nav_links(request: HttpRequest | None, items: tuple[NavItem, ...]) -> list[dict[str, Any]]:
    """The items whose pages exist, each with its URL and whether the request is on (or below) it."""
    links = []
    for item in items:
        url = _url_or_none(item.url_name)
        if url is not None:
            links.append({"url": url, "label": item.label, "icon": item.icon,
                          "current": _is_current(request, item, url)})
    return links


def nav_groups(request: HttpRequest | None) -> list[dict[str, Any]]:
    groups = []
    for group in NAV_GROUPS:
        links = nav_links(request, group.items)
        if links:
            groups.append({"key": group.key, "label": group.label, "icon": group.icon, "links": links,
                           "current": any(link["current"] for link in links)})
    return groups


@register.inclusion_tag("components/nav.html", takes_context=True)
def main_nav(context: dict[str, Any]) -> dict[str, Any]:
    """The top bar's groups (Build, Run, Evaluate, Settings) and the user menu (Admin, API docs, Log out)."""
    request = context.get("request")
    help_links = nav_links(request, HELP_ITEMS)
    return {"groups": nav_groups(request), "help_links": help_links, "user": context.get("user"),
            "csrf_token": context.get("csrf_token"), "help_current": any(link["current"] for link in help_links)}


@register.inclusion_tag("components/nav_link.html", takes_context=True)
def nav_link(context: dict[str, Any], url_name: str, label: str, *also: str) -> dict[str, Any]:
    """A navigation link, marked current on its page and below it; hidden if the page does not exist yet."""
    url = _url_or_none(url_name)
    if url is None:
        return {"url": None}
    return {"url": url, "label": label,
            "current": _is_current(context.get("request"), NavItem(url_name, label, "", also), url)}


@register.inclusion_tag("components/breadcrumbs.html")
def breadcrumbs(*pairs: str) -> dict[str, Any]:
    """`{% breadcrumbs "Build" "" "Workflows" "workflow-builder" workflow.name "" %}`: label, target pairs.

    A target is a URL name, a path (starting with /) or "" for no link; the last label is the current page.
    """
    if len(pairs) % 2:
        raise template.TemplateSyntaxError("breadcrumbs takes label, target pairs")
    crumbs = []
    for index in range(0, len(pairs), 2):
        label, target = str(pairs[index]), str(pairs[index + 1] or "")
        url = target if target.startswith("/") else (_url_or_none(target) if target else None)
        crumbs.append({"label": label, "url": url})
    if crumbs:
        crumbs[-1]["url"] = None
    return {"crumbs": crumbs}


@lru_cache(maxsize=64)
def _icon_svg(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise template.TemplateSyntaxError(f"icon name {name!r} is not a Lucide icon name")
    text = (ICONS_DIR / f"{name}.svg").read_text(encoding="utf-8")
    svg = text[text.index("<svg"):]
    # The vendored file's own class is replaced by ours; decorative, so hidden from assistive technology.
    svg = re.sub(r'\s+class="[^"]*"', "", svg, count=1)
    svg = re.sub(r"\s+", " ", svg).replace("<svg", '<svg class="icon" aria-hidden="true" focusable="false"', 1)
    return svg.strip()


@register.simple_tag
def icon(name: str) -> SafeString:
    """A vendored Lucide icon inlined as SVG (static/vendor/lucide-static-*/icons/), aria-hidden."""
    return mark_safe(_icon_svg(name))  # our own vendored file, never user input


@register.filter
def duration_ms(value: int | None) -> str:
    """340 -> '340 ms', 1234 -> '1.23 s'; empty for unknown."""
    if value is None or value == "":
        return ""
    value = int(value)
    return f"{value} ms" if value < 1000 else f"{value / 1000:.2f} s"


@register.filter
def percent(value: float | None) -> str:
    """0.8333 -> '83 %'; empty for unknown."""
    if value is None or value == "":
        return ""
    return f"{round(float(value) * 100)} %"


@register.simple_tag
def run_label(pk: int) -> str:
    """'Run #12', for breadcrumbs."""
    return format_html("Run #{}", pk)
