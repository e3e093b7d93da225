from collections.abc import Sequence
from typing import Any, TypedDict

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from blocks import render_workers, templating
from blocks.models import Block
from blocks.selectors import block_version_numbers
from blocks.services import InUse
from core.internals.django_prefetch import prefetched
from core.versioning import initial_versions, restore_message, version_missing, version_write
from core.writes import apply_changes, reject_unknown, replace_ordered
from llm.models import Endpoint
from payloads.models import Payload, PayloadBlock, PayloadVersion
from payloads.selectors import payload_used_by


class RenderProblem(Exception):
    """A block that cannot be rendered; the message names the block and the cause."""

    def __init__(self, message: str, *, missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing = missing or []


def payload_block_specs(payload: Payload) -> list[dict[str, str]]:
    """The payload's blocks in order, as plain data (what a run snapshot keeps)."""
    prefetched_uses = prefetched(payload, "payload_blocks")
    # PayloadBlock's default ordering is (position, id): a prefetched list is already in order.
    uses = prefetched_uses if prefetched_uses is not None else payload.payload_blocks.select_related("block")
    return [{"block": pb.block.name, "role": pb.role, "content": pb.block.content} for pb in uses]


def payload_variables(payload: Payload) -> list[str]:
    names: set[str] = set()
    for spec in payload_block_specs(payload):
        names |= templating.variables_of(spec["content"])
    return sorted(names)


def _reject_missing(block_specs: list[dict[str, str]], variables: dict[str, Any]) -> None:
    missing = sorted(
        {name for spec in block_specs for name in templating.variables_of(spec["content"])} - set(variables)
    )
    if missing:
        raise RenderProblem(f"missing variables: {', '.join(missing)}", missing=missing)


def _messages(block_specs: list[dict[str, str]], texts: list[str]) -> list[dict[str, str]]:
    """Consecutive blocks of one role join into one message (blank line between)."""
    messages: list[dict[str, str]] = []
    for spec, text in zip(block_specs, texts, strict=True):
        if messages and messages[-1]["role"] == spec["role"]:
            messages[-1]["content"] += "\n\n" + text
        else:
            messages.append({"role": spec["role"], "content": text})
    return messages


def _block_problem(block_specs: list[dict[str, str]], exc: templating.TemplateProblem) -> RenderProblem:
    return RenderProblem(f"block '{block_specs[exc.index]['block']}': {exc}")


def render_messages(block_specs: list[dict[str, str]], variables: dict[str, Any]) -> list[dict[str, str]]:
    """Render the blocks into chat messages under one template budget (blocks.render_workers)."""
    _reject_missing(block_specs, variables)
    try:
        texts = render_workers.render_blocks([spec["content"] for spec in block_specs], variables)
    except templating.TemplateProblem as exc:
        raise _block_problem(block_specs, exc) from exc
    return _messages(block_specs, texts)


async def arender_messages(block_specs: list[dict[str, str]], variables: dict[str, Any]) -> list[dict[str, str]]:
    """render_messages for the runner: a template that is more than text never runs on the event loop."""
    _reject_missing(block_specs, variables)
    try:
        texts = await render_workers.arender_blocks([spec["content"] for spec in block_specs], variables)
    except templating.TemplateProblem as exc:
        raise _block_problem(block_specs, exc) from exc
    return _messages(block_specs, texts)


def sample_variables(samples: dict[str, str]) -> dict[str, str]:
    """Sample values as template variables: a blank sample is a missing variable, not an empty text."""
    return {name: value for name, value in samples.items() if value.strip()}


def payload_sample_preview(*, block_specs: list[dict[str, str]],
                           samples: dict[str, str]) -> tuple[list[dict[str, str]], list[str]]:
    """The messages with the sample values, and the variables without one (shown as {{ name }})."""
    variables = sample_variables(samples)
    names = {name for spec in block_specs for name in templating.variables_of(spec["content"])}
    missing = sorted(names - set(variables))
    placeholders = {name: "{{ " + name + " }}" for name in missing}
    return render_messages(block_specs, {**variables, **placeholders}), missing


def payload_preview(*, payload: Payload, variables: dict[str, Any]) -> list[dict[str, str]]:
    return render_messages(payload_block_specs(payload), variables)


# --- Writes ---------------------------------------------------------------------------------------

class BlockUse(TypedDict):
    """One entry of a payload's ordered block list."""

    block: Block
    role: str


# Everything a caller may set on a payload besides its name, endpoint and blocks.
PAYLOAD_SETTINGS = {
    "description", "model", "temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty",
    "frequency_penalty", "stream", "json_schema", "structured_retries", "pass_reasoning", "extra_params",
    "cache_ttl_seconds",
}
# Kept in a version only when set: versions made before the field hash as they did (and the data
# migration that made the first versions ran before the field existed).
_VERSIONED_WHEN_SET = {"cache_ttl_seconds"}


def _payload_blocks_replace(*, payload: Payload, blocks: Sequence[BlockUse]) -> None:
    replace_ordered(payload.payload_blocks.all(),
                    [PayloadBlock(payload=payload, block=use["block"], role=use["role"]) for use in blocks],
                    field="blocks", label="Block")


def payload_version_content(payload: Any, *, block_versions: dict[int, int]) -> dict[str, Any]:
    """What a payload version keeps: settings, endpoint, and its blocks with their version numbers
    then. Reads attributes and the payload_blocks relation only, so the data migration can call it."""
    uses = payload.payload_blocks.order_by("position", "id").values("block_id", "block__name", "role")
    return {
        "name": payload.name, "endpoint": payload.endpoint.name,
        **{name: getattr(payload, name, None) for name in sorted(PAYLOAD_SETTINGS)
           if name not in _VERSIONED_WHEN_SET or getattr(payload, name, None) is not None},
        "blocks": [{"block_id": use["block_id"], "block": use["block__name"], "role": use["role"],
                    "block_version": block_versions.get(use["block_id"])} for use in uses],
    }


def payload_versions_initial(*, registry: Any) -> None:
    """Data migration: every payload without a version gets v1, naming its blocks' latest versions."""
    rows = (registry.get_model("blocks", "BlockVersion").objects.values("block_id")
            .annotate(latest=Max("number")).values_list("block_id", "latest"))
    block_versions = dict(rows)
    initial_versions(subjects=registry.get_model("payloads", "Payload").objects.select_related("endpoint"),
                     version_model=registry.get_model("payloads", "PayloadVersion"), field="payload",
                     content=lambda payload: payload_version_content(payload, block_versions=block_versions))


def _payload_version_write(payload: Payload, *, user: Any, message: str) -> None:
    block_ids = list(payload.payload_blocks.values_list("block_id", flat=True))
    content = payload_version_content(payload, block_versions=block_version_numbers(block_ids))
    version_write(versions=payload.versions, subject=payload, content=content, user=user, message=message)


@transaction.atomic
def payload_create(*, name: str, endpoint: Endpoint, blocks: Sequence[BlockUse] = (), user: Any = None,
                   message: str = "", **settings: Any) -> Payload:
    reject_unknown(settings, PAYLOAD_SETTINGS)
    payload = Payload(name=name, endpoint=endpoint, **settings)
    payload.full_clean()
    payload.save()
    _payload_blocks_replace(payload=payload, blocks=blocks)
    _payload_version_write(payload, user=user, message=message)
    return payload


@transaction.atomic
def payload_update(*, payload: Payload, data: dict[str, Any], blocks: Sequence[BlockUse] | None = None,
                   user: Any = None, message: str = "") -> Payload:
    """Change settings; `blocks`, when given, replaces the whole list. Renaming is safe: steps refer by id.
    A save that changes the content appends a version; an identical one does not."""
    apply_changes(payload, data, allowed=PAYLOAD_SETTINGS | {"name", "endpoint"})
    if blocks is not None:
        _payload_blocks_replace(payload=payload, blocks=blocks)
    _payload_version_write(payload, user=user, message=message)
    return payload


@transaction.atomic
def payload_version_restore(*, version: PayloadVersion, user: Any = None, message: str = "") -> Payload:
    """Make an old version current again (settings, endpoint, blocks in order) as a new version.
    The blocks come back at their current content: a payload version names block versions, it does not pin them."""
    if version.payload is None:
        raise ValidationError(f"The payload “{version.name}” no longer exists.")
    content = version.content
    endpoint = Endpoint.objects.filter(name=content["endpoint"]).first()
    if endpoint is None:
        raise version_missing("endpoint", content["endpoint"])
    found = Block.objects.in_bulk([use["block_id"] for use in content["blocks"]])
    for use in content["blocks"]:
        if use["block_id"] not in found:
            raise version_missing("block", use["block"])
    blocks: list[BlockUse] = [{"block": found[use["block_id"]], "role": use["role"]} for use in content["blocks"]]
    data = {"name": content["name"], "endpoint": endpoint,
            **{name: content[name] for name in PAYLOAD_SETTINGS if name in content}}
    return payload_update(payload=version.payload, data=data, blocks=blocks, user=user,
                          message=restore_message(version, message))


@transaction.atomic
def payload_delete(*, payload: Payload) -> None:
    used_by = payload_used_by(payload)
    if used_by:
        raise InUse(payload, used_by)
    payload.delete()
