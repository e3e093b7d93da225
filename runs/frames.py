"""Bounded WebSocket frames: big text fields are sent cut, with a reference to the full value.

Daphne closes a connection that sends a frame over 1 MiB, and on `ws/watch/` that would end every
subscription of the socket: so no frame exceeds WS_MAX_FRAME_BYTES. A text field (an input, a
prompt, an output) longer than WS_FIELD_MAX_CHARS is cut to that length; the message then lists
the cut fields in `truncated` and names the REST resource holding the full values in `full_url`.
"""
import json
from typing import Any

from django.conf import settings
from django.urls import reverse

# Past the field limits tried one after the other, lists (a run's responses) are left out as well.
SHRINK_STEPS = 4
SMALLEST_FIELD = 256


def run_url(run_id: int) -> str:
    return reverse("api-run-detail", args=[run_id])


def _shrink(value: Any, path: str, limit: int, keep_lists: bool, cut: list[str]) -> Any:
    if isinstance(value, str):
        if len(value) <= limit:
            return value
        cut.append(path)
        return value[:limit]
    if isinstance(value, dict):
        return {key: _shrink(item, f"{path}.{key}" if path else key, limit, keep_lists, cut)
                for key, item in value.items()}
    if isinstance(value, list):
        if not keep_lists and value:
            cut.append(path)
            return []
        return [_shrink(item, f"{path}.{i}", limit, keep_lists, cut) for i, item in enumerate(value)]
    return value


def _with_reference(message: dict[str, Any], cut: list[str]) -> dict[str, Any]:
    if not cut:
        return message
    reference: dict[str, Any] = {"truncated": cut}
    if isinstance(message.get("run_id"), int):
        reference["full_url"] = run_url(message["run_id"])
    return {**message, **reference}


def frame(message: dict[str, Any]) -> str:
    """The JSON text of `message`, within WS_MAX_FRAME_BYTES and with no field over WS_FIELD_MAX_CHARS."""
    text = json.dumps(message)  # ASCII only: its length is its size in bytes
    limit, max_bytes = settings.WS_FIELD_MAX_CHARS, settings.WS_MAX_FRAME_BYTES
    if len(text) <= min(limit, max_bytes):
        return text  # no field can be longer than the whole message
    attempts = [(max(limit // 4**i, SMALLEST_FIELD), True) for i in range(SHRINK_STEPS)] + [(SMALLEST_FIELD, False)]
    for field_limit, keep_lists in attempts:
        cut: list[str] = []
        text = json.dumps(_with_reference(_shrink(message, "", field_limit, keep_lists, cut), cut))
        if len(text) <= max_bytes:
            return text
    raise ValueError(f"a {message.get('type')} message does not fit in WS_MAX_FRAME_BYTES={max_bytes}")
