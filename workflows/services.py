from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NotRequired, TypedDict

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from blocks import templating
from core.sql import CompiledValues
from core.versioning import initial_versions, restore_message, version_missing, version_write
from core.writes import apply_changes, replace_ordered
from payloads.models import SAMPLING_FIELDS, Payload, PayloadBlock, PayloadVersion, request_params
from workflows import graph
from workflows.models import DEFAULT_MAX_PARALLEL, Step, Workflow, WorkflowVersion


@dataclass(frozen=True)
class StepData:
    """One step with what validation and snapshots read of its payload, endpoint and blocks."""

    output_key: str
    payload: dict[str, Any]
    endpoint: dict[str, Any]
    blocks: list[dict[str, str]]
    # Control flow (issue 22): workflows.graph says what each means.
    when: str = ""
    default: str = ""
    for_each: str = ""
    item_as: str = "item"
    max_parallel: int | None = None
    on_error: str = "fail"

    @property
    def flow(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FLOW_FIELDS}

    def reads(self) -> dict[str, set[str]]:
        return graph.step_reads(blocks=self.blocks, when=self.when, for_each=self.for_each, item_as=self.item_as)


# The control-flow fields of a step, as the model, versions, exports and the API name them.
FLOW_FIELDS = ("when", "default", "for_each", "item_as", "max_parallel", "on_error")
_PAYLOAD_FIELDS = ["name", "model", "stream", "json_schema", "structured_retries", "pass_reasoning", "extra_params",
                   "cache_ttl_seconds", *SAMPLING_FIELDS]
_STEP_VALUES = ("output_key", *FLOW_FIELDS, "payload_id", "payload__endpoint_id", "payload__endpoint__name",
                "payload__endpoint__enabled", "payload__endpoint__default_model",
                *(f"payload__{name}" for name in _PAYLOAD_FIELDS))
_steps_query = CompiledValues(lambda workflow_id: Step.objects.filter(workflow_id=workflow_id).order_by("position", "id")
                              .values(*_STEP_VALUES))
_blocks_query = CompiledValues(lambda payload_ids: PayloadBlock.objects.filter(payload_id__in=payload_ids)
                               .order_by("position", "id").values("payload_id", "role", "block__name", "block__content"))


def _step_data(rows: list[dict[str, Any]], blocks: dict[int, list[dict[str, str]]]) -> list[StepData]:
    return [
        StepData(
            output_key=row["output_key"],
            payload={"id": row["payload_id"], **{name: row[f"payload__{name}"] for name in _PAYLOAD_FIELDS}},
            endpoint={"id": row["payload__endpoint_id"], "name": row["payload__endpoint__name"],
                      "enabled": row["payload__endpoint__enabled"], "default_model": row["payload__endpoint__default_model"]},
            blocks=blocks[row["payload_id"]],
            **{name: row[name] for name in FLOW_FIELDS},
        )
        for row in rows
    ]


def _blocks_of(payload_ids: list[int]) -> dict[int, list[dict[str, str]]]:
    blocks: dict[int, list[dict[str, str]]] = {pk: [] for pk in payload_ids}
    for use in _blocks_query.rows(sorted(blocks)) if blocks else ():
        blocks[use["payload_id"]].append({"block": use["block__name"], "role": use["role"], "content": use["block__content"]})
    return blocks


def workflow_steps(workflow: Workflow) -> list[StepData]:
    """The steps in order with their payloads, endpoints and blocks, as plain data: two queries.

    Every run start reads this: the queries are compiled once (model instances, prefetching and
    compiling the querysets each time cost several times running them).
    """
    rows = _steps_query.rows(workflow.pk)
    return _step_data(rows, _blocks_of([row["payload_id"] for row in rows]))


def workflow_steps_many(workflow_ids: Sequence[int]) -> dict[int, list[StepData]]:
    """workflow_steps of many workflows in two queries (lists show every workflow's problems)."""
    rows = list(Step.objects.filter(workflow_id__in=workflow_ids).order_by("position", "id")
                .values("workflow_id", *_STEP_VALUES))
    blocks = _blocks_of(list({row["payload_id"] for row in rows}))
    return {pk: _step_data([row for row in rows if row["workflow_id"] == pk], blocks) for pk in workflow_ids}


def workflow_variable_flow(workflow: Workflow, *, steps: list[StepData] | None = None) -> list[dict[str, Any]]:
    """For each step: which variables it reads, and where each one comes from (or None)."""
    inputs = set(workflow.input_names)
    earlier: list[str] = []
    flow = []
    steps = workflow_steps(workflow) if steps is None else steps
    for index, step in enumerate(steps):
        reads = []
        local = {step.item_as} if step.for_each else set()
        for spec in step.blocks:
            try:
                names = sorted(templating.variables_of(spec["content"]))
            except templating.TemplateProblem:
                names = []
            for name in names:
                reads.append({"variable": name, "block": spec["block"],
                              "source": _source(name, earlier=earlier, inputs=inputs, local=local)})
        for where in ("when", "for_each"):
            for name in sorted(step.reads()[where]):
                reads.append({"variable": name, "block": None, "field": where,
                              "source": _source(name, earlier=earlier, inputs=inputs, local=set())})
        flow.append({"index": index, "output_key": step.output_key, "payload": step.payload["name"], "reads": reads,
                     "needs": graph.step_needs(index, set().union(*step.reads().values()), earlier), **step.flow})
        earlier.append(step.output_key)
    for node, depth in zip(flow, graph.levels([node["needs"] for node in flow]), strict=True):
        node["level"] = depth
    return flow


def _source(name: str, *, earlier: list[str], inputs: set[str], local: set[str]) -> str | None:
    if name in local:
        return "item"
    if name == "previous":
        return f"step:{earlier[-1]}" if earlier else None
    if name in earlier:
        return f"step:{name}"
    return "input" if name in inputs else None


def workflow_problems(workflow: Workflow, *, steps: list[StepData] | None = None) -> list[dict[str, Any]]:
    """Every reason the workflow cannot run, each naming its step and block. Empty: it can run."""
    problems: list[dict[str, Any]] = []
    steps = workflow_steps(workflow) if steps is None else steps
    if not steps:
        problems.append({"step": None, "message": "The workflow has no steps."})
    inputs = set(workflow.input_names)
    seen_keys: set[str] = set()
    for index, step in enumerate(steps):
        problems += _step_problems(step, index, inputs, seen_keys)
        seen_keys.add(step.output_key)
    return problems


def _step_problems(step: StepData, index: int, inputs: set[str], earlier: set[str]) -> list[dict[str, Any]]:
    where = {"step": index + 1, "output_key": step.output_key, "payload": step.payload["name"]}
    problems: list[dict[str, Any]] = []
    if step.output_key in earlier:
        problems.append({**where, "message": f"Output key '{step.output_key}' is used by an earlier step."})
    if step.output_key in inputs:
        problems.append({**where, "message": f"Output key '{step.output_key}' hides the input of that name."})
    if not step.endpoint["enabled"]:
        problems.append({**where, "message": f"Endpoint '{step.endpoint['name']}' is disabled."})
    if not step.blocks:
        problems.append({**where, "message": f"Payload '{step.payload['name']}' has no blocks."})
    local = {step.item_as} if step.for_each else set()
    for spec in step.blocks:
        problems += _block_problems(spec, {**where, "block": spec["block"]}, index, inputs, earlier | local)
    return problems + _flow_problems(step, where, index, inputs, earlier)


def _flow_problems(step: StepData, where: dict[str, Any], index: int, inputs: set[str],
                   earlier: set[str]) -> list[dict[str, Any]]:
    """What is wrong with a step's `when`, `for_each` and `as`, each naming the field."""
    problems: list[dict[str, Any]] = []
    if step.when.strip():
        problems += [{**problem, "field": "when"} for problem in
                     _block_problems({"content": graph.when_source(step.when)}, where, index, inputs, earlier)]
    if step.for_each:
        parsed = graph.for_each_parse(step.for_each)
        if parsed is None:
            problems.append({**where, "field": "for_each", "message": f"for_each '{step.for_each}' is not a variable "
                             "name or a dotted path (claims.items)."})
        elif parsed.root not in inputs and parsed.root not in earlier and not (parsed.root == "previous" and index):
            problems.append({**where, "field": "for_each", "variable": parsed.root,
                             "message": f"for_each reads '{parsed.root}', which is neither a workflow input nor an "
                                        "earlier step's output."})
        if step.item_as in inputs or step.item_as in earlier or step.item_as == step.output_key:
            problems.append({**where, "field": "as", "message": f"as '{step.item_as}' hides an input or a step's "
                             "output of that name."})
    return problems


def workflow_warnings(workflow: Workflow, *, steps: list[StepData] | None = None) -> list[dict[str, Any]]:
    """What may surprise at run time without stopping a run: a step that reads the output of a step
    that a `when` may skip, which has no default (it reads an empty string then)."""
    steps = workflow_steps(workflow) if steps is None else steps
    warnings = []
    keys = [step.output_key for step in steps]
    for index, step in enumerate(steps):
        for need in graph.step_needs(index, set().union(*step.reads().values()), keys[:index]):
            skippable = steps[need]
            if skippable.when.strip() and not skippable.default:
                warnings.append({"step": index + 1, "output_key": step.output_key, "payload": step.payload["name"],
                                 "variable": skippable.output_key, "level": "warning",
                                 "message": f"Reads '{skippable.output_key}', which step {need + 1} may skip (its "
                                            "'when'), and that step has no default: it reads an empty string then."})
    return warnings


def _block_problems(spec: dict[str, str], where: dict[str, Any], index: int, inputs: set[str],
                    earlier: set[str]) -> list[dict[str, Any]]:
    try:
        templating.check_syntax(spec["content"])
    except templating.TemplateProblem as exc:
        return [{**where, "message": f"Template error: {exc}"}]
    problems = []
    for name in sorted(templating.variables_of(spec["content"])):
        if name == "previous":
            if index == 0:
                problems.append({**where, "variable": name,
                                 "message": "'previous' is used in the first step, which has no previous step."})
        elif name not in inputs and name not in earlier:
            problems.append({**where, "variable": name,
                             "message": f"'{name}' is neither a workflow input nor an earlier step's output."})
    return problems


def workflow_snapshot(workflow: Workflow, *, steps: list[StepData] | None = None) -> dict[str, Any]:
    """Everything a run needs, frozen at start: later edits to the workflow do not change a run."""
    steps = workflow_steps(workflow) if steps is None else steps
    keys = [step.output_key for step in steps]
    return {
        "workflow": {"id": workflow.pk, "name": workflow.name},
        "inputs": workflow.inputs,
        "max_parallel": workflow.max_parallel,
        "steps": [
            {
                "index": index,
                "output_key": step.output_key,
                "needs": graph.step_needs(index, set().union(*step.reads().values()), keys[:index]),
                **flow_non_defaults(step.flow),
                "payload": {
                    "id": step.payload["id"],
                    "name": step.payload["name"],
                    "endpoint_id": step.endpoint["id"],
                    "endpoint_name": step.endpoint["name"],
                    "model": step.payload["model"] or step.endpoint["default_model"],
                    "params": request_params(step.payload),
                    "stream": step.payload["stream"],
                    "json_schema": step.payload["json_schema"],
                    "structured_retries": step.payload["structured_retries"],
                    "pass_reasoning": step.payload["pass_reasoning"],
                    # Only when set: the trees (and release hashes) of payloads without a cache stay as they were.
                    **({"cache_ttl": step.payload["cache_ttl_seconds"]} if step.payload["cache_ttl_seconds"] else {}),
                },
                "blocks": step.blocks,
            }
            for index, step in enumerate(steps)
        ],
    }


# A snapshot names a control-flow field only when it is not the default (a plain chain's stays as it was).
FLOW_DEFAULTS: dict[str, Any] = {"when": "", "default": "", "for_each": "", "item_as": "item", "max_parallel": None,
                                  "on_error": "fail"}


def flow_non_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """The control-flow fields among `values` (model names) that are not the default: what versions,
    snapshots and exports keep."""
    return {name: values[name] for name in FLOW_FIELDS if name in values and values[name] != FLOW_DEFAULTS[name]}


# --- Writes ---------------------------------------------------------------------------------------

class StepSpec(TypedDict):
    """One entry of a workflow's ordered step list."""

    payload: Payload
    output_key: str
    # Optional control-flow fields (FLOW_FIELDS); a missing one takes the model's default.
    when: NotRequired[str]
    default: NotRequired[str]
    for_each: NotRequired[str]
    item_as: NotRequired[str]
    max_parallel: NotRequired[int | None]
    on_error: NotRequired[str]


WORKFLOW_UPDATABLE_FIELDS = {"name", "description", "inputs", "max_parallel"}
# Settings of its runs rather than content: changing them writes no version (and a restore keeps them).
WORKFLOW_SETTINGS_FIELDS = {"budget", "budget_currency"}


def _steps_replace(*, workflow: Workflow, steps: Sequence[StepSpec]) -> None:
    replace_ordered(workflow.steps.all(),
                    [Step(workflow=workflow, payload=spec["payload"], output_key=spec["output_key"],
                          **{name: spec[name] for name in FLOW_FIELDS if name in spec})  # type: ignore[literal-required]
                     for spec in steps],
                    field="steps", label="Step")


def workflow_version_content(workflow: Any, *, payload_versions: dict[int, int]) -> dict[str, Any]:
    """What a workflow version keeps: description, inputs, and its steps with each payload's version
    then. Reads attributes and the steps relation only, so the data migration can call it."""
    flow = [name for name in FLOW_FIELDS if hasattr(workflow.steps.model, name)]  # the data migration's model predates them
    steps = workflow.steps.order_by("position", "id").values("output_key", "payload_id", "payload__name", *flow)
    content = {
        "name": workflow.name, "description": workflow.description, "inputs": workflow.inputs,
        "steps": [{"output_key": step["output_key"], "payload_id": step["payload_id"], "payload": step["payload__name"],
                   "payload_version": payload_versions.get(step["payload_id"]),
                   **flow_non_defaults(step)} for step in steps],
    }
    if getattr(workflow, "max_parallel", DEFAULT_MAX_PARALLEL) != DEFAULT_MAX_PARALLEL:
        content["max_parallel"] = workflow.max_parallel
    return content


def workflow_versions_initial(*, registry: Any) -> None:
    """Data migration: every workflow without a version gets v1, naming its payloads' latest versions."""
    rows = (registry.get_model("payloads", "PayloadVersion").objects.values("payload_id")
            .annotate(latest=Max("number")).values_list("payload_id", "latest"))
    payload_versions = dict(rows)
    initial_versions(subjects=registry.get_model("workflows", "Workflow").objects.all(),
                     version_model=registry.get_model("workflows", "WorkflowVersion"), field="workflow",
                     content=lambda workflow: workflow_version_content(workflow, payload_versions=payload_versions))


def _workflow_version_write(workflow: Workflow, *, user: Any, message: str) -> None:
    payload_ids = list(workflow.steps.values_list("payload_id", flat=True))
    rows = PayloadVersion.objects.filter(payload_id__in=payload_ids).values("payload_id").annotate(latest=Max("number"))
    content = workflow_version_content(workflow, payload_versions={row["payload_id"]: row["latest"] for row in rows})
    version_write(versions=workflow.versions, subject=workflow, content=content, user=user, message=message)


@transaction.atomic
def workflow_create(*, name: str, description: str = "", inputs: list[dict[str, Any]] | None = None,
                    steps: Sequence[StepSpec] = (), user: Any = None, message: str = "",
                    budget: Decimal | None = None, budget_currency: str = "USD", max_parallel: int = 4) -> Workflow:
    """Save the workflow even if it has problems: workflow_problems() says why it cannot run yet.
    `budget` is the default cost cap of its runs (None: none); `max_parallel`, how many of a run's
    steps may call at once."""
    workflow = Workflow(name=name, description=description, inputs=inputs if inputs is not None else [],
                        budget=budget, budget_currency=budget_currency or "USD", max_parallel=max_parallel)
    workflow.full_clean()
    workflow.save()
    _steps_replace(workflow=workflow, steps=steps)
    _workflow_version_write(workflow, user=user, message=message)
    return workflow


@transaction.atomic
def workflow_update(*, workflow: Workflow, data: dict[str, Any], steps: Sequence[StepSpec] | None = None,
                    user: Any = None, message: str = "") -> Workflow:
    """Change name, description, inputs or the runs' default budget; `steps`, when given, replaces the
    whole list. A save that changes the content appends a version; an identical one does not."""
    apply_changes(workflow, data, allowed=WORKFLOW_UPDATABLE_FIELDS | WORKFLOW_SETTINGS_FIELDS)
    if steps is not None:
        _steps_replace(workflow=workflow, steps=steps)
    _workflow_version_write(workflow, user=user, message=message)
    return workflow


@transaction.atomic
def workflow_version_restore(*, version: WorkflowVersion, user: Any = None, message: str = "") -> Workflow:
    """Make an old version current again (description, inputs, steps) as a new version."""
    if version.workflow is None:
        raise ValidationError(f"The workflow “{version.name}” no longer exists.")
    content = version.content
    found = Payload.objects.in_bulk([step["payload_id"] for step in content["steps"]])
    for step in content["steps"]:
        if step["payload_id"] not in found:
            raise version_missing("payload", step["payload"])
    steps: list[StepSpec] = [{"payload": found[step["payload_id"]], "output_key": step["output_key"],  # type: ignore[typeddict-item]
                              **{name: step.get(name, FLOW_DEFAULTS[name]) for name in FLOW_FIELDS}}
                             for step in content["steps"]]
    data = {name: content[name] for name in WORKFLOW_UPDATABLE_FIELDS - {"max_parallel"}}
    data["max_parallel"] = content.get("max_parallel", DEFAULT_MAX_PARALLEL)
    return workflow_update(workflow=version.workflow, data=data, steps=steps, user=user,
                           message=restore_message(version, message))


@transaction.atomic
def workflow_delete(*, workflow: Workflow) -> None:
    """Its runs stay, with the workflow's name (Run.workflow is SET_NULL)."""
    workflow.delete()
