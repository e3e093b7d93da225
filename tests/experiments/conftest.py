"""Helpers of the experiments tests: a one-step workflow with two releases, a dataset of topics."""
from __future__ import annotations

from typing import Any

from datasets.models import DatasetVersion
from datasets.services import dataset_create, dataset_version_create
from experiments.models import Experiment
from experiments.services import experiment_create
from payloads.models import Payload
from releases.models import Release
from releases.services import release_cut
from tests.factories import make_block, make_endpoint, make_payload, make_workflow
from workflows.models import Workflow


def make_dataset_version(rows: int, *, name: str = "topics", column: str = "topic") -> DatasetVersion:
    dataset = dataset_create(name=name)
    cases = ({"inputs": {column: f"t{i}"}, "expected": f"e{i}"} for i in range(rows))
    return dataset_version_create(dataset=dataset, cases=cases)[0]


def make_two_releases(base_url: str, *, name: str = "answer", **endpoint_fields: Any) -> tuple[Workflow, Release, Release]:
    """A one-step workflow; release A asks one way, release B another."""
    endpoint = make_endpoint(base_url, **endpoint_fields)
    block = make_block(f"{name}-prompt", "Answer briefly: {{ topic }}")
    payload = make_payload(name, endpoint, [("user", block)], max_tokens=5)
    workflow = make_workflow(name, [("answer", payload)])
    first, _ = release_cut(workflow=workflow)
    block.content = "Answer in detail: {{ topic }}"
    block.save()
    Payload.objects.filter(pk=payload.pk).update(max_tokens=7)
    second, _ = release_cut(workflow=workflow)
    assert first.pk != second.pk
    return workflow, first, second


def start_experiment(workflow: Workflow, version: DatasetVersion, releases: list[Release], **fields: Any) -> Experiment:
    return experiment_create(name=fields.pop("name", "compare"), workflow=workflow, dataset_version=version,
                             variants=[{"release": r.pk} for r in releases], **fields)
