"""Reads of the Payload Builder."""
from __future__ import annotations

from typing import Any

from blocks.selectors import UsedBy
from core.history import History, HistoryLayout, version_history
from payloads.models import Payload


def payload_used_by(payload: Payload) -> UsedBy:
    """The workflow steps that run the payload."""
    steps = payload.steps.select_related("workflow", "payload").order_by("workflow__name", "position", "pk")
    return UsedBy(steps=list(steps))


def _block_use(use: dict[str, Any]) -> str:
    version = f" (v{use['block_version']})" if use.get("block_version") else ""
    return f"{use['role']}: {use['block']}{version}"


PAYLOAD_HISTORY = HistoryLayout(texts=("description",), lists={"blocks": _block_use})


def payload_history(payload: Payload, selected: int | str | None = None) -> History:
    """The payload's versions, and what the selected one (default: the previous) changes against the current."""
    return version_history(payload.versions, layout=PAYLOAD_HISTORY, selected=selected)
