"""Reading releases: what changed between two trees, the releases of a workflow, the log of its labels.
How each release did (runs, success, latency, tokens) is runs.selectors.release_impact."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from blocks.models import Block
from core.diffing import WordDiff, word_diff
from core.history import shown
from payloads.models import Payload
from releases.models import Label, LabelMove, Release
from workflows.models import DEFAULT_MAX_PARALLEL, OnError
from workflows.services import FLOW_DEFAULTS, FLOW_FIELDS

# The settings of a step compared field by field (block texts are compared word by word).
STEP_FIELDS = ("payload", "endpoint", "model", "params", "stream", "json_schema", "structured_retries", "pass_reasoning",
               "cache_ttl")


def _step_fields(step: dict[str, Any]) -> dict[str, str]:
    payload = step["payload"]
    values = {"payload": payload.get("name"), "endpoint": payload.get("endpoint_name"), "model": payload.get("model"),
              "params": payload.get("params"), "stream": payload.get("stream"), "json_schema": payload.get("json_schema"),
              "structured_retries": payload.get("structured_retries"), "pass_reasoning": payload.get("pass_reasoning"),
              "cache_ttl": payload.get("cache_ttl")}
    return {name: shown(values[name]) for name in STEP_FIELDS}


# The control-flow fields as the builder labels them (templates/workflows/_step_row.html), and what
# it shows for one left at its default (its placeholders), so a diff reads like the form it came from.
FLOW_LABELS = {"when": "When", "default": "Output when skipped", "for_each": "For each item of", "item_as": "as",
               "max_parallel": "Items at once", "on_error": "If an item fails"}
_FLOW_UNSET = {"when": "always runs", "default": "empty", "for_each": "one call", "max_parallel": "the workflow's"}
_FLOW_CODE = {"when", "for_each", "item_as"}  # typed as code in the builder (its monospace inputs)


@dataclass(frozen=True)
class FlowChange:
    """One control-flow field of a step that differs; old and new as stored (a snapshot omits defaults)."""

    name: str
    old: Any
    new: Any

    @property
    def label(self) -> str:
        return FLOW_LABELS[self.name]

    @property
    def old_shown(self) -> str:
        return _flow_shown(self.name, self.old)

    @property
    def new_shown(self) -> str:
        return _flow_shown(self.name, self.new)

    @property
    def is_code(self) -> bool:
        return self.name in _FLOW_CODE

    @property
    def old_is_default(self) -> bool:
        return self.old == FLOW_DEFAULTS[self.name]

    @property
    def new_is_default(self) -> bool:
        return self.new == FLOW_DEFAULTS[self.name]


def _flow_shown(name: str, value: Any) -> str:
    if name == "on_error":  # the builder's choice, "value: what it does"
        return f"{value}: {OnError(value).label}" if value in OnError.values else str(value)
    if value == FLOW_DEFAULTS[name] and name in _FLOW_UNSET:
        return _FLOW_UNSET[name]
    return str(value)


def _flow_changes(before: dict[str, Any], after: dict[str, Any]) -> list[FlowChange]:
    old = {name: before.get(name, FLOW_DEFAULTS[name]) for name in FLOW_FIELDS}
    new = {name: after.get(name, FLOW_DEFAULTS[name]) for name in FLOW_FIELDS}
    return [FlowChange(name, old[name], new[name]) for name in FLOW_FIELDS if old[name] != new[name]]


def _tree_max_parallel(tree: dict[str, Any]) -> int | None:
    """How many steps the tree runs at once: a tree with steps but no number predates the setting and
    ran at the workflow's default (as the engine reads it); a tree of no steps runs nothing."""
    if "max_parallel" in tree:
        return tree["max_parallel"]
    return DEFAULT_MAX_PARALLEL if tree.get("steps") else None


@dataclass(frozen=True)
class BlockChange:
    position: int
    block: str
    old_role: str | None
    new_role: str | None
    diff: WordDiff

    @property
    def status(self) -> str:
        if self.old_role is None:
            return "added"
        if self.new_role is None:
            return "removed"
        return "changed" if self.old_role != self.new_role or not self.diff.is_same else "same"


@dataclass(frozen=True)
class StepChange:
    output_key: str
    status: str  # added | removed | moved | changed | same
    old_index: int | None
    new_index: int | None
    fields: list[tuple[str, str, str]] = field(default_factory=list)  # (name, old, new), changed ones only
    blocks: list[BlockChange] = field(default_factory=list)
    flow: list[FlowChange] = field(default_factory=list)  # changed ones only


@dataclass(frozen=True)
class TreeDiff:
    inputs: tuple[str, str]
    steps: list[StepChange]
    max_parallel: tuple[int | None, int | None] = (None, None)

    @property
    def changed(self) -> bool:
        return (self.inputs[0] != self.inputs[1] or self.max_parallel[0] != self.max_parallel[1]
                or any(step.status != "same" for step in self.steps))

    def as_dict(self) -> dict[str, Any]:
        def words(diff: WordDiff) -> dict[str, Any]:
            return {"changed_words": diff.changed_words, "old": [asdict(s) for s in diff.left],
                    "new": [asdict(s) for s in diff.right]}
        return {
            "changed": self.changed,
            "inputs": {"old": self.inputs[0], "new": self.inputs[1], "changed": self.inputs[0] != self.inputs[1]},
            "max_parallel": {"old": self.max_parallel[0], "new": self.max_parallel[1],
                             "changed": self.max_parallel[0] != self.max_parallel[1]},
            "steps": [{"output_key": s.output_key, "status": s.status, "old_index": s.old_index, "new_index": s.new_index,
                       "fields": [{"name": n, "old": o, "new": v} for n, o, v in s.fields],
                       "flow": [{"name": f.name, "old": f.old, "new": f.new} for f in s.flow],
                       "blocks": [{"position": b.position, "block": b.block, "status": b.status, "old_role": b.old_role,
                                   "new_role": b.new_role, "text": words(b.diff)} for b in s.blocks]}
                      for s in self.steps],
        }


def _block_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[BlockChange]:
    changes = []
    for position in range(max(len(old), len(new))):
        before = old[position] if position < len(old) else None
        after = new[position] if position < len(new) else None
        changes.append(BlockChange(
            position=position, block=(after or before or {}).get("block", ""),
            old_role=before["role"] if before else None, new_role=after["role"] if after else None,
            diff=word_diff(before["content"] if before else "", after["content"] if after else "")))
    return changes


def _step_change(key: str, before: dict[str, Any] | None, after: dict[str, Any] | None, moved: bool) -> StepChange:
    if before is None or after is None:
        status = "added" if before is None else "removed"
        return StepChange(key, status, None if before is None else before["index"],
                          None if after is None else after["index"],
                          blocks=_block_changes([] if before is None else before["blocks"],
                                                [] if after is None else after["blocks"]))
    old_fields, new_fields = _step_fields(before), _step_fields(after)
    fields = [(name, old_fields[name], new_fields[name]) for name in STEP_FIELDS if old_fields[name] != new_fields[name]]
    blocks = _block_changes(before["blocks"], after["blocks"])
    flow = _flow_changes(before, after)
    changed = bool(fields) or bool(flow) or any(b.status != "same" for b in blocks)
    status = "changed" if changed else "moved" if moved else "same"
    return StepChange(key, status, before["index"], after["index"], fields, blocks, flow)


def tree_diff(old: dict[str, Any], new: dict[str, Any]) -> TreeDiff:
    """Two snapshots compared: steps matched by output key (added, removed, moved, changed), each
    step's settings and control flow field by field and its blocks word by word, and how many steps
    run at once."""
    old_steps = {s["output_key"]: s for s in old.get("steps", [])}
    new_steps = {s["output_key"]: s for s in new.get("steps", [])}
    kept_old = [k for k in old_steps if k in new_steps]
    kept_new = [k for k in new_steps if k in old_steps]
    keys = list(dict.fromkeys([*new_steps, *old_steps]))
    steps = [_step_change(k, old_steps.get(k), new_steps.get(k),
                          moved=k in kept_old and kept_old.index(k) != kept_new.index(k)) for k in keys]
    steps.sort(key=lambda s: (s.new_index if s.new_index is not None else s.old_index or 0, s.new_index is None))
    return TreeDiff(inputs=(shown(old.get("inputs")), shown(new.get("inputs"))), steps=steps,
                    max_parallel=(_tree_max_parallel(old), _tree_max_parallel(new)))


def release_list(workflow_id: int) -> Any:
    """The workflow's releases newest first, with their labels (runs.selectors.release_impact adds how they did)."""
    return (Release.objects.filter(workflow_id=workflow_id).select_related("created_by", "workflow_version")
            .prefetch_related("labels").order_by("-number"))


def label_history(workflow_id: int, *, label: str = "") -> Any:
    moves = LabelMove.objects.filter(workflow_id=workflow_id).select_related("from_release", "to_release", "moved_by")
    return moves.filter(label=label) if label else moves


def release_previous(release: Release) -> Release | None:
    """The workflow's release numbered just before this one (None for a first release, or a deleted workflow's)."""
    if release.workflow_id is None:
        return None
    return (Release.objects.filter(workflow_id=release.workflow_id, number__lt=release.number)
            .order_by("-number").first())


def release_get(workflow_id: int, number: int) -> Release:
    """One release of the workflow by its number (Release.DoesNotExist if none)."""
    return Release.objects.select_related("created_by").get(workflow_id=workflow_id, number=number)


def label_list(workflow_id: int) -> Any:
    return Label.objects.filter(workflow_id=workflow_id).select_related("release", "updated_by").order_by("name")


def label_previous_release(label: Label) -> Release | None:
    """Where a roll back takes the label: the release it pointed at before its latest move (None
    for a label never moved since it was created)."""
    move = (LabelMove.objects.filter(workflow_id=label.workflow_id, label=label.name, to_release_id=label.release_id)
            .select_related("from_release").order_by("-moved_at", "-id").first())
    return move.from_release if move is not None else None


@dataclass(frozen=True)
class UsedVersion:
    """A payload or block version a release's step used; `exists` is False once the object was deleted."""

    kind: str  # payload | block
    object_id: int
    name: str
    number: int | None
    exists: bool


def release_step_versions(release: Release) -> dict[int, list[UsedVersion]]:
    """Per step index: the payload version, then the block versions, that the release's step used
    (names from the release's snapshot, which the saved versions were resolved with)."""
    snapshot_steps = {step["index"]: step for step in (release.snapshot or {}).get("steps", [])}
    payload_ids = {step["payload_id"] for step in release.steps}
    block_ids = {block["block_id"] for step in release.steps for block in step["blocks"]}
    payloads = set(Payload.objects.filter(pk__in=payload_ids).values_list("pk", flat=True))
    blocks = set(Block.objects.filter(pk__in=block_ids).values_list("pk", flat=True))
    used: dict[int, list[UsedVersion]] = {}
    for step in release.steps:
        snapshot = snapshot_steps.get(step["index"], {})
        names = [block.get("block", "") for block in snapshot.get("blocks", [])]
        versions = [UsedVersion("payload", step["payload_id"], snapshot.get("payload", {}).get("name", ""),
                                step["payload_version"], step["payload_id"] in payloads)]
        versions += [UsedVersion("block", block["block_id"], names[position] if position < len(names) else "",
                                 block["block_version"], block["block_id"] in blocks)
                     for position, block in enumerate(step["blocks"])]
        used[step["index"]] = versions
    return used
