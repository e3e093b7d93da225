"""Reads of the Workflow Builder's pages: the list with every workflow's problems, and the History page."""
from __future__ import annotations

from typing import Any

from core.history import History, HistoryLayout, version_history
from workflows import graph, services
from workflows.models import Workflow


def _input(spec: dict[str, Any]) -> str:
    default = f" = “{spec['default']}”" if spec.get("default") else ""
    description = f" — {spec['description']}" if spec.get("description") else ""
    return f"{spec.get('name', '')}{default}{description}"


def _step(step: dict[str, Any]) -> str:
    """A step of a version as History lists it; its control flow too, so a change of it shows as one."""
    version = f" (v{step['payload_version']})" if step.get("payload_version") else ""
    flow = []
    if step.get("when"):
        flow.append(f"when {step['when']}" + (f" else “{step['default']}”" if step.get("default") else ""))
    if step.get("for_each"):
        flow.append(f"for each {step.get('item_as', 'item')} in {step['for_each']}")
    if step.get("max_parallel"):
        flow.append(f"{step['max_parallel']} at once")
    if step.get("on_error"):
        flow.append(f"on error {step['on_error']}")
    return f"{step['output_key']} ← {step['payload']}{version}" + "".join(f" · {part}" for part in flow)


WORKFLOW_HISTORY = HistoryLayout(texts=("description",), lists={"inputs": _input, "steps": _step})


def workflow_history(workflow: Workflow, selected: int | str | None = None) -> History:
    """The workflow's versions, and what the selected one (default: the previous) changes against the current."""
    return version_history(workflow.versions, layout=WORKFLOW_HISTORY, selected=selected)


def workflow_list_rows() -> list[dict[str, Any]]:
    """Every workflow with its problems, in a fixed number of queries (the builder's list)."""
    workflows = list(Workflow.objects.prefetch_related("steps__payload").order_by("name"))
    steps = services.workflow_steps_many([w.pk for w in workflows])
    return [{"workflow": w, "problems": services.workflow_problems(w, steps=steps[w.pk]), "levels": _levels(steps[w.pk])}
            for w in workflows]


def _levels(steps: list[services.StepData]) -> list[list[str]]:
    """The steps' output keys by graph level: the keys of one level run side by side."""
    keys = [step.output_key for step in steps]
    needs = [graph.step_needs(index, set().union(*step.reads().values()), keys[:index]) for index, step in enumerate(steps)]
    rows: list[list[str]] = []
    for key, level in zip(keys, graph.levels(needs), strict=True):
        while len(rows) <= level:
            rows.append([])
        rows[level].append(key)
    return rows
