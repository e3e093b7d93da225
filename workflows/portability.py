"""Export a workflow with its payloads, blocks and endpoint references as one JSON document, and import it.

With `with_history` the document also carries every block's, payload's and the workflow's versions
(format version 2; workflows/portability_history.py says what is kept and how ids are rewritten).

The document never holds an API key, its ciphertext or an endpoint's extra headers (they may carry
credentials): endpoints travel as references by name, with their URL and default model as a hint.

Import reconciles names, so a document can be imported into a busy installation and twice in a row:
- a block, payload or workflow is reused when one with the same name (or a suffixed name from an
  earlier import, "name (2)") is identical; otherwise it is created under the first free name of
  name, "name (2)", "name (3)", ...
- an object the import creates gets the document's history, if it has one, else a v1 "imported";
  a reused one gets no version, so importing a document twice writes nothing.
- an endpoint is matched by name. A missing endpoint is an error naming it (create it with its key,
  then import again), unless `create_missing_endpoints` is set: then it is created *disabled and
  without a key*, so nothing can call it until someone adds the key and enables it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from blocks.models import Block
from blocks.services import block_create
from core.surrogates import MESSAGE as SURROGATE_MESSAGE
from core.surrogates import surrogate_path
from llm.models import Endpoint
from llm.services import endpoint_create
from payloads.models import Payload
from payloads.services import PAYLOAD_SETTINGS, payload_create
from workflows.models import DEFAULT_MAX_PARALLEL, MAX_PARALLEL, Step, Workflow
from workflows.portability_history import (
    FORMAT_VERSION_HISTORY,
    PAYLOAD_BLOCKS,
    WORKFLOW_STEPS,
    Landing,
    Reference,
    history_check,
    history_recreate,
    versions_export,
)
from workflows.services import FLOW_FIELDS, flow_non_defaults, workflow_create

FORMAT = "llm-orchestrator.workflow"
FORMAT_VERSION = 1
READABLE_VERSIONS = (FORMAT_VERSION, FORMAT_VERSION_HISTORY)
SUFFIXED_NAMES_TRIED = 1000
PAYLOAD_EXPORTED_SETTINGS = sorted(PAYLOAD_SETTINGS)

Named = TypeVar("Named", bound=models.Model)

# A step's control flow in an export: the API's names (the model's `item_as` is `as`), only when not the default.
FLOW_EXPORT_NAMES = {name: "as" if name == "item_as" else name for name in FLOW_FIELDS}
FLOW_TEXT_FIELDS = ("when", "default", "for_each", "item_as", "on_error")


def step_flow_export(step: Step) -> dict[str, Any]:
    return {FLOW_EXPORT_NAMES[name]: value
            for name, value in flow_non_defaults({name: getattr(step, name) for name in FLOW_FIELDS}).items()}


def step_flow_import(step: dict[str, Any]) -> dict[str, Any]:
    """An exported step's control flow by the model's names (checked by _check_step_flow)."""
    return {name: step[exported] for name, exported in FLOW_EXPORT_NAMES.items() if exported in step}


# --- Export ---------------------------------------------------------------------------------------

def workflow_export(workflow: Workflow, *, with_history: bool = False) -> dict[str, Any]:
    """The workflow and everything it uses, by name; with_history adds each one's versions (format version 2)."""
    steps = list(workflow.steps.select_related("payload__endpoint").order_by("position", "id"))
    payloads: dict[str, Payload] = {step.payload.name: step.payload for step in steps}
    blocks: dict[str, Block] = {}
    payload_docs = []
    for payload in payloads.values():
        uses = list(payload.payload_blocks.select_related("block").order_by("position", "id"))
        for use in uses:
            blocks[use.block.name] = use.block
        payload_docs.append({
            "name": payload.name,
            "endpoint": payload.endpoint.name,
            **{name: getattr(payload, name) for name in PAYLOAD_EXPORTED_SETTINGS},
            "blocks": [{"block": use.block.name, "role": use.role} for use in uses],
        })
    endpoints = {payload.endpoint.name: payload.endpoint for payload in payloads.values()}
    document = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(),
        "workflow": {
            "name": workflow.name,
            "description": workflow.description,
            "inputs": workflow.inputs,
            "steps": [{"payload": step.payload.name, "output_key": step.output_key, **step_flow_export(step)}
                      for step in steps],
            # Only when not the default, so a plain chain's export is what it was before issue 22.
            **({"max_parallel": workflow.max_parallel} if workflow.max_parallel != DEFAULT_MAX_PARALLEL else {}),
        },
        "payloads": payload_docs,
        "blocks": [{"name": b.name, "description": b.description, "content": b.content} for b in blocks.values()],
        # A reference, not a copy: never the key, its ciphertext or the extra headers.
        "endpoints": [{"name": e.name, "base_url": e.base_url, "default_model": e.default_model}
                      for e in endpoints.values()],
    }
    if with_history:
        _history_add(document, workflow, payloads=list(payloads.values()), blocks=list(blocks.values()))
    return document


def _history_add(document: dict[str, Any], workflow: Workflow, *, payloads: list[Payload], blocks: list[Block]) -> None:
    """Each object's id here (what version contents name) and its versions, oldest first."""
    document["version"] = FORMAT_VERSION_HISTORY
    for doc, obj in [*zip(document["payloads"], payloads, strict=True), *zip(document["blocks"], blocks, strict=True)]:
        doc["id"] = obj.pk
        doc["versions"] = versions_export(obj)
    document["workflow"]["versions"] = versions_export(workflow)


# --- Import ---------------------------------------------------------------------------------------

@dataclass
class ImportReport:
    workflow: Workflow
    items: list[dict[str, str]] = field(default_factory=list)

    def add(self, kind: str, exported_name: str, obj: models.Model, action: str) -> None:
        self.items.append({"kind": kind, "exported_name": exported_name, "name": str(obj), "action": action,
                           "id": str(obj.pk)})

    def as_dict(self) -> dict[str, Any]:
        return {"workflow": {"id": self.workflow.pk, "name": self.workflow.name}, "items": self.items,
                "created": sum(1 for i in self.items if i["action"] == "created"),
                "reused": sum(1 for i in self.items if i["action"] == "reused")}

    def lines(self) -> Iterator[str]:
        for item in self.items:
            renamed = f" (exported as '{item['exported_name']}')" if item["name"] != item["exported_name"] else ""
            yield f"{item['action']:8} {item['kind']:9} '{item['name']}'{renamed}"


def _candidate_names(name: str) -> Iterator[str]:
    yield name
    for n in range(2, SUFFIXED_NAMES_TRIED + 2):
        suffix = f" ({n})"
        yield name[: 100 - len(suffix)] + suffix


def _reconcile(model: type[Named], name: str, *, same: Callable[[Named], bool],
               create: Callable[[str], Named]) -> tuple[Named, str]:
    """Reuse the first identical object among name, "name (2)", ...; else create at the first free name."""
    for candidate in _candidate_names(name):
        existing = model.objects.filter(name=candidate).first()  # type: ignore[attr-defined]
        if existing is None:
            return create(candidate), "created"
        if same(existing):
            return existing, "reused"
    raise ValidationError({"name": f"Too many objects named like '{name}'."})


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise ValidationError({where: message})


def _check_document(document: object) -> dict[str, Any]:
    """The document's shape, with an error naming the place that is wrong."""
    _require(isinstance(document, dict), "document", "The export must be a JSON object.")
    assert isinstance(document, dict)
    where = surrogate_path(document)
    _require(where is None, where or "", SURROGATE_MESSAGE)
    _require(document.get("format") == FORMAT, "format", f"Not a workflow export (expected format '{FORMAT}').")
    _require(type(document.get("version")) is int and document["version"] in READABLE_VERSIONS, "version",
             f"Export format version {document.get('version')!r} is not supported (this installation reads "
             f"{' and '.join(map(str, READABLE_VERSIONS))}).")
    for key in ("payloads", "blocks", "endpoints"):
        _require(isinstance(document.get(key), list) and all(isinstance(i, dict) for i in document[key]), key,
                 "Must be a list of objects.")
        for index, item in enumerate(document[key]):
            _require(isinstance(item.get("name"), str) and item["name"] != "", f"{key}[{index}].name",
                     "A name is required.")
    workflow = document.get("workflow")
    _require(isinstance(workflow, dict) and isinstance(workflow.get("name"), str), "workflow",
             "Must be an object with a name.")
    _require(isinstance(workflow.get("steps"), list), "workflow.steps", "Must be a list.")
    # Only a version 2 document may carry histories: a version 1 reader never saw them.
    history_fields = {"id", "versions"} if document["version"] == FORMAT_VERSION_HISTORY else set()
    blocks = {b["name"] for b in document["blocks"]}
    endpoints = {e["name"] for e in document["endpoints"]}
    payloads = {p["name"] for p in document["payloads"]}
    for index, payload in enumerate(document["payloads"]):
        _require(payload.get("endpoint") in endpoints, f"payloads[{index}].endpoint",
                 f"Endpoint {payload.get('endpoint')!r} is not in the export's endpoints.")
        _require(isinstance(payload.get("blocks"), list), f"payloads[{index}].blocks", "Must be a list.")
        for position, use in enumerate(payload["blocks"]):
            _require(isinstance(use, dict) and use.get("block") in blocks, f"payloads[{index}].blocks[{position}]",
                     "Must name a block of the export.")
        unknown = set(payload) - set(PAYLOAD_EXPORTED_SETTINGS) - {"name", "endpoint", "blocks", *history_fields}
        _require(not unknown, f"payloads[{index}]", f"Unknown fields: {', '.join(sorted(unknown))}.")
    for index, step in enumerate(workflow["steps"]):
        _require(isinstance(step, dict) and step.get("payload") in payloads, f"workflow.steps[{index}].payload",
                 "Must name a payload of the export.")
        _require(isinstance(step.get("output_key"), str), f"workflow.steps[{index}].output_key", "Must be a string.")
        _check_step_flow(step, f"workflow.steps[{index}]")
    if "max_parallel" in workflow:
        _check_flow_value(Workflow, "max_parallel", workflow["max_parallel"], "workflow.max_parallel")
    if history_fields:
        history_check(document)
    return document


def _check_step_flow(step: dict[str, Any], where: str) -> None:
    """Each control-flow field of an exported step by the model's rules; the error names the step and field."""
    unknown = set(step) - {"payload", "output_key", *FLOW_EXPORT_NAMES.values()}
    _require(not unknown, where, f"Unknown fields: {', '.join(sorted(unknown))}.")
    for name, exported in FLOW_EXPORT_NAMES.items():
        if exported in step:
            _check_flow_value(Step, name, step[exported], f"{where}.{exported}")


def _check_flow_value(model: type[models.Model], name: str, value: Any, where: str) -> None:
    if name in FLOW_TEXT_FIELDS:
        _require(isinstance(value, str), where, "Must be a string.")
    else:
        nullable = model is Step
        _require((isinstance(value, int) and not isinstance(value, bool)) or (nullable and value is None), where,
                 f"Must be an integer from 1 to {MAX_PARALLEL}{' or null' if nullable else ''}.")
    field_ = model._meta.get_field(name)
    try:
        field_.clean(value, None)
    except ValidationError as exc:
        raise ValidationError({where: exc.messages}) from exc
    _require(name != "item_as" or value != "", where, "A variable name is required.")


def _payload_settings(doc: dict[str, Any]) -> dict[str, Any]:
    return {name: doc[name] for name in PAYLOAD_EXPORTED_SETTINGS if name in doc}


def _payload_is(payload: Payload, *, endpoint: Endpoint, settings: dict[str, Any],
                blocks: list[tuple[int, str]]) -> bool:
    uses = [(u.block_id, u.role) for u in payload.payload_blocks.order_by("position", "id")]
    defaults = {name: Payload._meta.get_field(name).get_default() for name in PAYLOAD_EXPORTED_SETTINGS}
    return (payload.endpoint_id == endpoint.pk and uses == blocks
            and all(getattr(payload, name) == settings.get(name, defaults[name]) for name in PAYLOAD_EXPORTED_SETTINGS))


ReportItems = list[tuple[str, str, models.Model, str]]
IMPORTED = "imported"


@transaction.atomic
def workflow_import(*, document: object, create_missing_endpoints: bool = False, user: Any = None) -> ImportReport:
    """Create what the installation lacks, reuse what it has; all or nothing. What is created gets
    the document's history (see workflows/portability_history.py) or, without one, its v1 with the
    message "imported"; what is reused gets no version."""
    doc = _check_document(document)
    report_items: ReportItems = []
    endpoints = _import_endpoints(doc["endpoints"], create_missing_endpoints, report_items)
    block_landings: Landings = {}
    blocks = _import_blocks(doc["blocks"], report_items, user, block_landings)
    payload_landings: Landings = {}
    payloads = _import_payloads(doc["payloads"], endpoints, blocks, report_items, user,
                                (block_landings, payload_landings))
    spec = doc["workflow"]
    workflow, action = _import_workflow(spec, payloads, user)
    _land(workflow, spec, action, user=user, reference=WORKFLOW_STEPS, references=payload_landings)
    report = ImportReport(workflow=workflow)
    for kind, exported_name, obj, item_action in report_items:
        report.add(kind, exported_name, obj, item_action)
    report.add("workflow", spec["name"], workflow, action)
    return report


Landings = dict[int, Landing]


def _land(obj: Block | Payload | Workflow, item: dict[str, Any], action: str, *, user: Any,
          reference: Reference | None = None, references: Landings | None = None, into: Landings | None = None) -> None:
    """Note where the exported object landed (`into`, by its id at the source); one the import created
    gets the document's history, if it has one, in place of its v1 "imported"."""
    with_history = action == "created" and bool(item.get("versions"))
    landing = Landing(pk=obj.pk, exported_name=item["name"], name=obj.name, with_history=with_history)
    if with_history:
        history_recreate(subject=obj, item=item, landing=landing, user=user, reference=reference, landings=references)
    if into is not None and "id" in item:
        into[item["id"]] = landing


def _import_endpoints(items: list[dict[str, Any]], create_missing: bool, report_items: ReportItems) -> dict[str, Endpoint]:
    endpoints: dict[str, Endpoint] = {}
    missing = []
    for item in items:
        endpoint = Endpoint.objects.filter(name=item["name"]).first()
        if endpoint is None:
            missing.append(item)
        else:
            endpoints[item["name"]] = endpoint
    if missing and not create_missing:
        names = ", ".join(f"'{item['name']}'" for item in missing)
        raise ValidationError({"endpoints": f"No endpoint named {names} on this installation. Create it (with its "
                                            "API key) and import again, or import with create_missing_endpoints "
                                            "to create it disabled and without a key."})
    for item in missing:
        endpoint = endpoint_create(name=item["name"], base_url=item.get("base_url") or "http://127.0.0.1/v1",
                                   default_model=item.get("default_model") or "unknown", enabled=False)
        endpoints[item["name"]] = endpoint
        report_items.append(("endpoint", item["name"], endpoint, "created disabled, without a key"))
    for item in items:
        if item not in missing:
            report_items.append(("endpoint", item["name"], endpoints[item["name"]], "reused"))
    return endpoints


def _import_blocks(items: list[dict[str, Any]], report_items: ReportItems, user: Any,
                   landings: Landings) -> dict[str, Block]:
    blocks: dict[str, Block] = {}
    for item in items:
        content, description = item.get("content", ""), item.get("description", "")
        block, action = _reconcile(
            Block, item["name"],
            same=lambda b, c=content, d=description: b.content == c and b.description == d,
            create=lambda name, c=content, d=description: block_create(name=name, content=c, description=d, user=user,
                                                                         message=IMPORTED))
        _land(block, item, action, user=user, into=landings)
        blocks[item["name"]] = block
        report_items.append(("block", item["name"], block, action))
    return blocks


def _import_payloads(items: list[dict[str, Any]], endpoints: dict[str, Endpoint], blocks: dict[str, Block],
                     report_items: ReportItems, user: Any, landings: tuple[Landings, Landings]) -> dict[str, Payload]:
    """`landings`: where the blocks landed (read), where the payloads land (filled)."""
    block_landings, payload_landings = landings
    payloads: dict[str, Payload] = {}
    for item in items:
        endpoint = endpoints[item["endpoint"]]
        settings = _payload_settings(item)
        uses = [{"block": blocks[u["block"]], "role": u.get("role", "user")} for u in item["blocks"]]
        keys = [(u["block"].pk, u["role"]) for u in uses]
        payload, action = _reconcile(
            Payload, item["name"],
            same=lambda p, e=endpoint, s=settings, k=keys: _payload_is(p, endpoint=e, settings=s, blocks=k),
            create=lambda name, e=endpoint, s=settings, u=uses: payload_create(name=name, endpoint=e, blocks=u, user=user,
                                                                             message=IMPORTED, **s))
        _land(payload, item, action, user=user, reference=PAYLOAD_BLOCKS, references=block_landings,
              into=payload_landings)
        payloads[item["name"]] = payload
        report_items.append(("payload", item["name"], payload, action))
    return payloads


def _import_workflow(spec: dict[str, Any], payloads: dict[str, Payload], user: Any) -> tuple[Workflow, str]:
    steps = [{"payload": payloads[s["payload"]], "output_key": s["output_key"], **step_flow_import(s)}
             for s in spec["steps"]]
    inputs = spec.get("inputs") or []
    description = spec.get("description", "")
    max_parallel = spec.get("max_parallel", DEFAULT_MAX_PARALLEL)

    def same_workflow(workflow: Workflow) -> bool:
        current = [(s.payload_id, s.output_key, step_flow_export(s)) for s in workflow.steps.order_by("position", "id")]
        return (workflow.description == description and workflow.inputs == inputs
                and workflow.max_parallel == max_parallel
                and current == [(s["payload"].pk, s["output_key"], exported_flow(s)) for s in steps])

    return _reconcile(
        Workflow, spec["name"], same=same_workflow,
        create=lambda name: workflow_create(name=name, description=description, inputs=inputs, steps=steps, user=user,
                                            message=IMPORTED, max_parallel=max_parallel))


def exported_flow(spec: dict[str, Any]) -> dict[str, Any]:
    """A step spec's control flow as an export names it (to compare with step_flow_export)."""
    return {FLOW_EXPORT_NAMES[name]: value for name, value in flow_non_defaults(spec).items()}
