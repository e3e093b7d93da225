"""What a step's recorded answer is worth to the steps after it (chain and flow alike)."""
from __future__ import annotations

from typing import Any


def step_value(response: dict[str, Any], step: dict[str, Any]) -> Any:
    """What later steps see of a step's answer: its JSON, or its text (with the reasoning, if the payload asks)."""
    if response["output_json"] is not None:
        return response["output_json"]
    if response["reasoning"] and step["payload"].get("pass_reasoning"):
        return f"<think>{response['reasoning']}</think>\n{response['output']}"
    return response["output"]
