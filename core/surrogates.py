"""Lone surrogates (a JSON "\\ud800" with no partner) are text no page can encode as UTF-8: every
route that takes text refuses them, naming where they are, before anything is written."""
from __future__ import annotations

import json
import re
from typing import Any

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MESSAGE = "Contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode text."


def _key(name: object) -> str:
    # A key may itself hold a surrogate: name it with JSON's escapes so the message can be encoded.
    return json.dumps(name)[1:-1] if isinstance(name, str) else str(name)


def surrogate_path(value: Any, path: str = "") -> str | None:
    """The first place in a parsed JSON value (dotted, with [index]) whose text or key has a lone surrogate."""
    if isinstance(value, str):
        return (path or "value") if LONE_SURROGATE.search(value) else None
    if isinstance(value, dict):
        for name, item in value.items():
            where = f"{path}.{_key(name)}" if path else _key(name)
            if isinstance(name, str) and LONE_SURROGATE.search(name):
                return where
            found = surrogate_path(item, where)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = surrogate_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def escape_lone_surrogates(text: str) -> str:
    """JSON text with each lone surrogate written as its \\uXXXX escape: the same value, encodable as UTF-8."""
    return LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
