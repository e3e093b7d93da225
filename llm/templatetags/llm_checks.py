"""What the connectivity test's report (llm.diagnostics) shows beyond its checks: the dialect the server
accepts, one line per capability, marked where this test learned it. Used by templates/llm/_checks.html,
which both the LLM Tester and the Endpoints page render."""
from __future__ import annotations

from typing import Any

from django import template

from llm.capabilities import value_label

register = template.Library()


# (capability, label), in the order they are shown.
CAPABILITY_ROWS = (
    ("structured_output", "Structured output"),
    ("stream_options", "Stream options sent"),
    ("stream_usage", "Usage in streams"),
    ("token_limit_param", "Token limit sent as"),
    ("temperature", "Temperature allowed"),
    ("reasoning_field", "Reasoning field"),
)


@register.simple_tag
def capability_summary(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of "What the server accepts"; none unless a completion got through (else nothing was probed)."""
    answered = any(check["name"] == "completion" and check["ok"] for check in report.get("checks", []))
    capabilities = report.get("capabilities") or {}
    if not answered or not capabilities:
        return []
    learned = report.get("learned") or {}
    return [
        {"name": name, "label": label, "value": value_label(name, capabilities[name]), "learned": name in learned,
         "code": name == "token_limit_param"}
        for name, label in CAPABILITY_ROWS if name in capabilities
    ]
