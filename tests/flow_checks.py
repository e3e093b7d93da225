"""A 100-item map and what must hold of it after crashes (issue 22): the kill -9 tests of both modes use it."""
from __future__ import annotations

import json
from collections import Counter

from runs.models import Response, Run
from tests.factories import make_block, make_endpoint, make_payload
from tests.fake_llm import reply_text
from workflows.models import Step, Workflow

MAP_ITEMS = 100


def make_map_workflow(base_url: str, *, max_parallel: int = 10) -> Workflow:
    """Check each of the input's claims (one call per item), then a report that reads the list."""
    endpoint = make_endpoint(base_url)
    workflow = Workflow.objects.create(name="map", inputs=[{"name": "claims"}])
    check = make_payload("check", endpoint, [("user", make_block("check", "Check the claim: {{ claim }}"))])
    report = make_payload("report", endpoint, [("user", make_block("report", "Report on {{ checks | length }} checks."))])
    Step.objects.create(workflow=workflow, payload=check, output_key="checks", position=0, for_each="claims",
                        item_as="claim", max_parallel=max_parallel)
    Step.objects.create(workflow=workflow, payload=report, output_key="report", position=1)
    return workflow


def claims_of(tag: str) -> str:
    return json.dumps([f"{tag}-claim-{n}" for n in range(1, MAP_ITEMS + 1)])


def assert_every_map_item_committed_once(run_ids: list[int], requests: list[tuple[float, str]]) -> dict[str, int]:
    """Every run succeeded with each item answered once, and no item was asked again after its
    answer was committed. Returns the figures (runs, items, items asked more than once)."""
    runs = {run.pk: run for run in Run.objects.filter(pk__in=run_ids)}
    assert Counter(run.status for run in runs.values()) == {"succeeded": len(run_ids)}, \
        [run.error for run in runs.values() if run.status != "succeeded"]
    asked = Counter(prompt for _, prompt in requests)
    asked_at: dict[str, list[float]] = {}
    for at, prompt in requests:
        asked_at.setdefault(prompt, []).append(at)
    retried = 0
    for run_id in run_ids:
        found = list(Response.objects.filter(run_id=run_id).order_by("index", "item")
                     .values_list("index", "item", "item_value", "output", "created_at"))
        assert [(index, item) for index, item, *_ in found] == \
            [(0, 0), *((0, n) for n in range(1, MAP_ITEMS + 1)), (1, 0)], f"run {run_id}: items lost or duplicated"
        claims = json.loads(runs[run_id].inputs["claims"])
        for index, item, value, output, created_at in found:
            if index == 0 and item:
                prompt = f"Check the claim: {value}"
                assert value == claims[item - 1] and output == reply_text(prompt)
                # Asked again after its answer was committed: never.
                assert not [at for at in asked_at.get(prompt, []) if at > created_at.timestamp() + 0.001], prompt
                retried += asked[prompt] > 1
        assert runs[run_id].output == reply_text(f"Report on {MAP_ITEMS} checks.")
    return {"runs": len(run_ids), "items": len(run_ids) * MAP_ITEMS, "items_asked_again_uncommitted": retried}
