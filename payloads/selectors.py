"""Reads of the Payload Builder."""
from __future__ import annotations

from blocks.selectors import UsedBy
from payloads.models import Payload


def payload_used_by(payload: Payload) -> UsedBy:
    """The workflow steps that run the payload."""
    steps = payload.steps.select_related("workflow", "payload").order_by("workflow__name", "position", "pk")
    return UsedBy(steps=list(steps))
