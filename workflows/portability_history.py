"""The optional history of a workflow export: each block's, payload's and the workflow's versions,
oldest first, checked and recreated on import. workflows/portability.py owns the document; this
module owns its `versions` lists.

An export with history has format version 2 (version 1 plus, per block and payload, `id` (its id
at the source) and `versions`, and the workflow's `versions`). Each version: number, message,
created_at, author (username or null), content_hash, content. Why a second format version: a
reader of version 1 ignores unknown keys on blocks and the workflow, so it would import the
current state and silently drop the history; with version 2 it says it cannot read the document.

Import keeps history only for an object the import creates (a reused, identical object keeps its
own, so importing a document twice writes no version):
- numbers, messages and contents are kept, and created_at is the original time: a history says
  when a text was written, not when it was copied. The author is the importing user (or null); the
  original author's name is appended to the message ("why (by alice)");
- contents name block_id / payload_id of the source: they become this installation's ids (null for
  an object the document does not carry, so restoring that version says it no longer exists);
  block_version / payload_version are kept when that object's history came with this import (its
  numbers are the exported ones), else null; a name equal to the exported name becomes the
  imported one ("name (2)"). The content_hash is recomputed from the rewritten content, so it is
  the exported hash whenever nothing had to be rewritten.
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.versioning import content_hash, version_history_write
from payloads.models import Payload
from payloads.services import PAYLOAD_SETTINGS
from workflows.models import DEFAULT_MAX_PARALLEL
from workflows.services import FLOW_FIELDS, flow_non_defaults

FORMAT_VERSION_HISTORY = 2
LARGEST_NUMBER = 2**31 - 1  # a version number is a PositiveIntegerField: larger fails on PostgreSQL
NAME_LENGTH = 100  # VersionBase.name

# What each value must be: "text", "list", "ref" (an id or null), "number" (a positive integer).
BLOCK_CONTENT = {"name": "text", "description": "text", "content": "text"}
PAYLOAD_CONTENT = {"name": "text", "endpoint": "text", "blocks": "list"}
WORKFLOW_CONTENT = {"name": "text", "description": "text", "inputs": "list", "steps": "list"}
PAYLOAD_USE = {"block_id": "ref", "block": "text", "role": "text", "block_version": "ref"}
WORKFLOW_STEP = {"output_key": "text", "payload_id": "ref", "payload": "text", "payload_version": "ref"}
VERSION = {"number": "number", "message": "text", "content_hash": "text"}
VERSION_OPTIONAL = {"created_at", "author", "content"}
# A version keeps a step's control flow and the workflow's max_parallel only when not the default (issue 22).
WORKFLOW_CONTENT_OPTIONAL = {"max_parallel"}


@dataclass(frozen=True)
class Reference:
    """How a version's content names other objects: the list, and the id, name and version keys of its entries."""

    items: str
    id_key: str
    name_key: str
    version_key: str
    entry: dict[str, str]
    entry_optional: Collection[str] = ()


PAYLOAD_BLOCKS = Reference("blocks", "block_id", "block", "block_version", PAYLOAD_USE)
WORKFLOW_STEPS = Reference("steps", "payload_id", "payload", "payload_version", WORKFLOW_STEP, FLOW_FIELDS)


# --- Export ---------------------------------------------------------------------------------------

def versions_export(subject: models.Model) -> list[dict[str, Any]]:
    """The subject's versions, oldest first; the author by username."""
    rows = subject.versions.select_related("created_by").order_by("number")  # type: ignore[attr-defined]
    return [{"number": v.number, "message": v.message, "created_at": v.created_at.isoformat(),
             "author": v.created_by.get_username() if v.created_by else None, "content_hash": v.content_hash,
             "content": v.content} for v in rows]


# --- Checks ---------------------------------------------------------------------------------------

def _fail(where: str, message: str) -> None:
    raise ValidationError({where: message})


def _is(value: Any, kind: str) -> bool:
    if kind == "text":
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, list)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    return (is_int and 0 < value <= LARGEST_NUMBER) or (kind == "ref" and value is None)


KIND_NAMES = {"text": "a string", "list": "a list", "ref": f"an integer from 1 to {LARGEST_NUMBER} or null",
              "number": f"an integer from 1 to {LARGEST_NUMBER}"}


def _check_fields(value: Any, where: str, required: dict[str, str], optional: Collection[str] = ()) -> None:
    if not isinstance(value, dict):
        _fail(where, "Must be an object.")
    for name, kind in required.items():
        if not _is(value.get(name), kind):
            _fail(f"{where}.{name}", f"Must be {KIND_NAMES[kind]}.")
    unknown = set(value) - set(required) - set(optional)
    if unknown:
        _fail(where, f"Unknown fields: {', '.join(sorted(unknown))}.")


def _check_content(content: Any, where: str, shape: dict[str, str], reference: Reference | None,
                   optional: Collection[str] = ()) -> None:
    _check_fields(content, where, shape, optional)
    if len(content["name"]) > NAME_LENGTH:
        _fail(f"{where}.name", f"At most {NAME_LENGTH} characters.")
    if reference is not None:
        for index, entry in enumerate(content[reference.items]):
            _check_fields(entry, f"{where}.{reference.items}[{index}]", reference.entry, reference.entry_optional)


ContentCheck = Callable[[Any, str], None]


def _check_version(version: Any, where: str, check_content: ContentCheck) -> None:
    _check_fields(version, where, VERSION, VERSION_OPTIONAL)
    created_at = version.get("created_at")
    if created_at is not None and not (isinstance(created_at, str) and parse_datetime(created_at)):
        _fail(f"{where}.created_at", "Must be an ISO 8601 date and time, or null.")
    if version.get("author") is not None and not isinstance(version["author"], str):
        _fail(f"{where}.author", "Must be a username or null.")
    check_content(version.get("content"), f"{where}.content")
    if content_hash(version["content"]) != version["content_hash"]:
        _fail(f"{where}.content_hash", "Does not match the content (sha256 of its canonical JSON).")


def _check_versions(item: dict[str, Any], where: str, check_content: ContentCheck, current: dict[str, Any],
                    as_current: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """The list's shape, each version's hash, increasing numbers, and the last one equal to the object."""
    versions = item.get("versions")
    if not isinstance(versions, list):
        _fail(f"{where}.versions", "Must be a list (oldest first).")
    previous = 0
    for index, version in enumerate(versions):
        _check_version(version, f"{where}.versions[{index}]", check_content)
        if version["number"] <= previous:
            _fail(f"{where}.versions[{index}].number", "Must be greater than the previous version's number.")
        previous = version["number"]
    if versions and as_current(versions[-1]["content"]) != current:
        _fail(f"{where}.versions", "The last version's content is not the object's content in this document.")


def _source_ids(items: list[dict[str, Any]], kind: str) -> dict[str, int]:
    """Each exported name's id at the source: what version contents name."""
    ids: dict[str, int] = {}
    for index, item in enumerate(items):
        if not _is(item.get("id"), "number"):
            _fail(f"{kind}[{index}].id", f"Must be {KIND_NAMES['number']} (the id at the source).")
        if item["id"] in ids.values():
            _fail(f"{kind}[{index}].id", "Another item has this id.")
        ids[item["name"]] = item["id"]
    return ids


def _payload_defaults() -> dict[str, Any]:
    return {name: Payload._meta.get_field(name).get_default() for name in PAYLOAD_SETTINGS}


def _block_as_current(content: dict[str, Any]) -> dict[str, Any]:
    return {name: content[name] for name in BLOCK_CONTENT}


def _payload_as_current(content: dict[str, Any]) -> dict[str, Any]:
    defaults = _payload_defaults()
    return {"name": content["name"], "endpoint": content["endpoint"],
            **{name: content.get(name, defaults[name]) for name in PAYLOAD_SETTINGS},
            "blocks": [(use["block_id"], use["role"]) for use in content["blocks"]]}


def _workflow_as_current(content: dict[str, Any]) -> dict[str, Any]:
    return {"name": content["name"], "description": content["description"], "inputs": content["inputs"],
            "max_parallel": content.get("max_parallel", DEFAULT_MAX_PARALLEL),
            "steps": [(step["payload_id"], step["output_key"], flow_non_defaults(step)) for step in content["steps"]]}


def _check_block_content(content: Any, where: str) -> None:
    _check_content(content, where, BLOCK_CONTENT, None)


def _check_payload_content(content: Any, where: str) -> None:
    _check_content(content, where, PAYLOAD_CONTENT, PAYLOAD_BLOCKS, PAYLOAD_SETTINGS)


def _check_workflow_content(content: Any, where: str) -> None:
    _check_content(content, where, WORKFLOW_CONTENT, WORKFLOW_STEPS, WORKFLOW_CONTENT_OPTIONAL)


def history_check(document: dict[str, Any]) -> None:
    """A version 2 document's histories (its version 1 shape is already checked); errors name the place."""
    block_ids = _source_ids(document["blocks"], "blocks")
    payload_ids = _source_ids(document["payloads"], "payloads")
    for index, item in enumerate(document["blocks"]):
        current = {"name": item["name"], "description": item.get("description", ""), "content": item.get("content", "")}
        _check_versions(item, f"blocks[{index}]", _check_block_content, current, _block_as_current)
    defaults = _payload_defaults()
    for index, item in enumerate(document["payloads"]):
        current = {"name": item["name"], "endpoint": item["endpoint"],
                   **{name: item.get(name, defaults[name]) for name in PAYLOAD_SETTINGS},
                   "blocks": [(block_ids[use["block"]], use.get("role", "user")) for use in item["blocks"]]}
        _check_versions(item, f"payloads[{index}]", _check_payload_content, current, _payload_as_current)
    spec = document["workflow"]
    current = {"name": spec["name"], "description": spec.get("description", ""), "inputs": spec.get("inputs") or [],
               "max_parallel": spec.get("max_parallel", DEFAULT_MAX_PARALLEL),
               "steps": [(payload_ids[step["payload"]], step["output_key"],
                          flow_non_defaults({name: step["as" if name == "item_as" else name]
                                             for name in FLOW_FIELDS if ("as" if name == "item_as" else name) in step}))
                         for step in spec["steps"]]}
    _check_versions(spec, "workflow", _check_workflow_content, current, _workflow_as_current)


# --- Import ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Landing:
    """Where an exported object landed: its id and name here, and whether its history came along."""

    pk: int
    exported_name: str
    name: str
    with_history: bool


def _renamed(name: str, landing: Landing) -> str:
    return landing.name if name == landing.exported_name else name


def _entry_rewrite(entry: dict[str, Any], reference: Reference, landings: dict[int, Landing]) -> dict[str, Any]:
    landing = landings.get(entry[reference.id_key])
    if landing is None:
        return {**entry, reference.id_key: None, reference.version_key: None}
    return {**entry, reference.id_key: landing.pk, reference.name_key: _renamed(entry[reference.name_key], landing),
            reference.version_key: entry[reference.version_key] if landing.with_history else None}


def _content_rewrite(content: dict[str, Any], landing: Landing, reference: Reference | None,
                     landings: dict[int, Landing]) -> dict[str, Any]:
    rewritten = {**content, "name": _renamed(content["name"], landing)}
    if reference is not None:
        rewritten[reference.items] = [_entry_rewrite(entry, reference, landings) for entry in content[reference.items]]
    return rewritten


def _message(version: dict[str, Any]) -> str:
    author = version.get("author")
    if not author:
        return version["message"]
    return f"{version['message']} (by {author})" if version["message"] else f"by {author}"


def _created_at(version: dict[str, Any]) -> datetime | None:
    if version.get("created_at") is None:
        return None
    moment = parse_datetime(version["created_at"])
    assert moment is not None  # history_check parsed it
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def history_recreate(*, subject: models.Model, item: dict[str, Any], landing: Landing, user: Any,
                     reference: Reference | None = None, landings: dict[int, Landing] | None = None) -> None:
    """Replace the version the creating service wrote with the exported history, ids rewritten."""
    history = []
    for version in item["versions"]:
        content = _content_rewrite(version["content"], landing, reference, landings or {})
        history.append({"name": content["name"], "number": version["number"], "content": content,
                        "message": _message(version), "created_at": _created_at(version)})
    version_history_write(versions=subject.versions, history=history, user=user)  # type: ignore[attr-defined]
