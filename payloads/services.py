from typing import Any

from blocks import templating
from payloads.models import Payload


class RenderProblem(Exception):
    """A block that cannot be rendered; the message names the block and the cause."""

    def __init__(self, message: str, *, missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing = missing or []


def payload_block_specs(payload: Payload) -> list[dict[str, str]]:
    """The payload's blocks in order, as plain data (what a run snapshot keeps)."""
    return [
        {"block": pb.block.name, "role": pb.role, "content": pb.block.content}
        for pb in payload.payload_blocks.select_related("block").order_by("position", "id")
    ]


def payload_variables(payload: Payload) -> list[str]:
    names: set[str] = set()
    for spec in payload_block_specs(payload):
        names |= templating.variables_of(spec["content"])
    return sorted(names)


def render_messages(block_specs: list[dict[str, str]], variables: dict[str, Any]) -> list[dict[str, str]]:
    """Render each block; consecutive blocks of one role join into one message (blank line between)."""
    missing = sorted(
        {name for spec in block_specs for name in templating.variables_of(spec["content"])} - set(variables)
    )
    if missing:
        raise RenderProblem(f"missing variables: {', '.join(missing)}", missing=missing)
    messages: list[dict[str, str]] = []
    for spec in block_specs:
        try:
            text = templating.render(spec["content"], variables)
        except templating.TemplateProblem as exc:
            raise RenderProblem(f"block '{spec['block']}': {exc}") from exc
        if messages and messages[-1]["role"] == spec["role"]:
            messages[-1]["content"] += "\n\n" + text
        else:
            messages.append({"role": spec["role"], "content": text})
    return messages


def payload_preview(*, payload: Payload, variables: dict[str, Any]) -> list[dict[str, str]]:
    return render_messages(payload_block_specs(payload), variables)
