"""/api/experiments/ over real HTTP to the fake LLM: bad input is a 400 naming the field with nothing
made, permissions per route, cancel and retry-errors, the results matrix by page and filter, the export."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from datasets.services import dataset_create, dataset_version_create
from experiments.models import Cell, Experiment, Variant
from releases.models import Release
from releases.services import release_cut
from runs.models import Run
from tests.experiments.conftest import make_dataset_version, make_two_releases
from tests.experiments.running import drive_to_end
from tests.factories import make_block, make_endpoint, make_payload, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def setup(fake_llm) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    workflow, first, second = make_two_releases(fake_llm.base_url, max_retries=0)
    version = make_dataset_version(3)
    return {"workflow": workflow, "first": first, "second": second, "version": version,
            "body": {"name": "compare", "workflow": workflow.pk, "dataset": version.dataset_id,
                     "variants": [{"release": first.pk}, {"release": second.pk, "name": "detailed"}]}}


def _created(api: APIClient, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/api/experiments/", body, format="json")
    assert response.status_code == 201, response.data
    return response.data


def _stored() -> tuple[int, int, int, int]:
    return Experiment.objects.count(), Variant.objects.count(), Cell.objects.count(), Run.objects.count()


def test_create_reads_the_dataset_and_answers_with_progress_and_variants(api: APIClient, setup) -> None:  # type: ignore[no-untyped-def]
    data = _created(api, {**setup["body"], "repeats": 2, "concurrency": 4, "mapping": {"topic": "topic"}})
    assert (data["status"], data["cell_count"], data["repeats"], data["concurrency"]) == ("running", 12, 2, 4)
    assert (data["dataset_version"], data["dataset_version_number"]) == (setup["version"].pk, 1)
    assert data["mapping"] == {"topic": {"column": "topic"}}
    assert data["progress"]["queued"] == 12 and data["progress"]["done"] == 0
    assert [(v["variant"], v["release_id"], v["cells"]) for v in data["variants"]] == [
        (f"r{setup['first'].number}", setup["first"].pk, 6), ("detailed", setup["second"].pk, 6)]
    # By a dataset version's id, and a version number, do the same.
    by_id = _created(api, {**{k: v for k, v in setup["body"].items() if k != "dataset"},
                           "dataset_version": setup["version"].pk})
    by_number = _created(api, {**setup["body"], "version": 1})
    assert by_id["dataset_version"] == by_number["dataset_version"] == setup["version"].pk
    listed = api.get("/api/experiments/").data
    assert listed["count"] == 3 and "variants" not in listed["results"][0]
    assert api.get(f"/api/experiments/?workflow={setup['workflow'].pk}&status=running").data["count"] == 3
    assert api.get("/api/experiments/?status=finished").data["count"] == 0
    assert api.get(f"/api/experiments/?workflow={setup['workflow'].pk + 99}").status_code == 400


def _other_workflow_release(fake_llm) -> Release:  # type: ignore[no-untyped-def]
    endpoint = make_endpoint(fake_llm.base_url, name="elsewhere")
    payload = make_payload("other", endpoint, [("user", make_block("other-prompt", "Say {{ topic }}"))])
    return release_cut(workflow=make_workflow("other", [("answer", payload)]))[0]


def _empty_dataset() -> int:
    dataset = dataset_create(name="empty")
    dataset_version_create(dataset=dataset, cases=iter([]))
    return dataset.pk


BAD_BODIES: list[tuple[str, Callable[..., dict[str, Any]], str]] = [
    ("a mapping to a column that does not exist", lambda s, f: {"mapping": {"topic": "subject"}}, "mapping.topic"),
    ("a mapping to an input no variant has", lambda s, f: {"mapping": {"tone": {"value": "dry"}}}, "mapping.tone"),
    ("a variant of another workflow",
     lambda s, f: {"variants": [{"release": s["first"].pk}, {"release": _other_workflow_release(f).pk}]},
     "variants[1].release"),
    ("a release that does not exist", lambda s, f: {"variants": [{"release": 999999}]}, "variants[0].release"),
    ("a label that does not exist", lambda s, f: {"variants": [{"label": "production"}]}, "variants[0].label"),
    ("no variant", lambda s, f: {"variants": []}, "variants"),
    ("zero rows", lambda s, f: {"dataset": _empty_dataset()}, "dataset_version"),
    ("a version that does not exist", lambda s, f: {"version": 7}, "version"),
    ("no dataset", lambda s, f: {"dataset": None}, "dataset"),
    ("repeats 0", lambda s, f: {"repeats": 0}, "repeats"),
    ("concurrency over the maximum", lambda s, f: {"concurrency": 100_000}, "concurrency"),
    ("a budget that is not an amount", lambda s, f: {"budget": "lots"}, "budget"),
    ("an unknown field", lambda s, f: {"colour": "red"}, "colour"),
    ("a workflow that does not exist", lambda s, f: {"workflow": 999999}, "workflow"),
]


@pytest.mark.parametrize(("case", "change", "field"), BAD_BODIES, ids=[case for case, _, _ in BAD_BODIES])
def test_bad_input_is_a_400_naming_the_field_and_nothing_is_made(api: APIClient, setup, fake_llm, case: str,  # type: ignore[no-untyped-def]
                                                                  change: Callable[..., dict[str, Any]], field: str) -> None:
    body = {**setup["body"], **change(setup, fake_llm)}
    body = {key: value for key, value in body.items() if value is not None}
    releases = Release.objects.count()
    response = api.post("/api/experiments/", body, format="json")
    assert response.status_code == 400, response.data
    assert list(response.data) == [field], response.data
    assert _stored() == (0, 0, 0, 0)
    assert Release.objects.count() == releases
    assert fake_llm.stats()["chat_requests"] == 0


def test_every_route_needs_its_permission(api_with_perms: Callable[..., APIClient], api: APIClient, setup) -> None:  # type: ignore[no-untyped-def]
    experiment = _created(api, setup["body"])
    base = f"/api/experiments/{experiment['id']}"
    reads = ("/api/experiments/", f"{base}/", f"{base}/results/", f"{base}/export/?format=csv")
    for url in reads:
        assert APIClient().get(url).status_code in (401, 403), url
        assert api_with_perms().get(url).status_code == 403, url
    assert APIClient().post("/api/experiments/", setup["body"], format="json").status_code in (401, 403)
    reader = api_with_perms("experiments.view_experiment")
    for url in reads:
        assert reader.get(url).status_code == 200, url
    assert reader.post("/api/experiments/", setup["body"], format="json").status_code == 403
    assert reader.post(f"{base}/cancel/").status_code == 403
    assert reader.post(f"{base}/retry-errors/").status_code == 403
    assert reader.delete(f"{base}/").status_code == 403
    assert Experiment.objects.get().status == "running" and Experiment.objects.count() == 1
    # Adding is not changing: cancelling needs change_experiment, which alone is enough.
    adder = api_with_perms("experiments.view_experiment", "experiments.add_experiment")
    assert adder.post("/api/experiments/", setup["body"], format="json").status_code == 201
    assert adder.post(f"{base}/cancel/").status_code == 403
    changer = api_with_perms("experiments.view_experiment", "experiments.change_experiment")
    assert changer.post("/api/experiments/", setup["body"], format="json").status_code == 403
    assert changer.post(f"{base}/cancel/").status_code == 202


def test_cancel_stops_it_and_a_running_experiment_cannot_be_deleted(api: APIClient, setup) -> None:  # type: ignore[no-untyped-def]
    experiment = _created(api, setup["body"])
    base = f"/api/experiments/{experiment['id']}"
    refused = api.delete(f"{base}/")
    assert refused.status_code == 400 and list(refused.data) == ["status"]
    cancelled = api.post(f"{base}/cancel/")
    assert cancelled.status_code == 202
    assert (cancelled.data["status"], cancelled.data["progress"]["cancelled"]) == ("stopping", 6)
    assert drive_to_end(experiment["id"]).status == "cancelled"
    assert Run.objects.count() == 0  # nothing had started, nothing ran
    assert api.get(f"{base}/").data["status"] == "cancelled"
    assert api.delete(f"{base}/").status_code == 204
    assert _stored() == (0, 0, 0, 0)


def test_retry_errors_reruns_the_failed_cells_and_the_failures_filter_finds_them(api: APIClient, setup, fake_llm) -> None:  # type: ignore[no-untyped-def]
    fake_llm.fail_next({"status": 500}, {"status": 500})
    experiment = _created(api, {**setup["body"], "variants": [{"release": setup["first"].pk}], "concurrency": 1})
    base = f"/api/experiments/{experiment['id']}"
    assert drive_to_end(experiment["id"]).status == "finished"
    detail = api.get(f"{base}/").data
    assert (detail["progress"]["succeeded"], detail["progress"]["failed"]) == (1, 2)
    assert detail["variants"][0]["success_rate"] == pytest.approx(1 / 3)
    failures = api.get(f"{base}/results/?filter=failures").data["results"]
    assert [(row["position"], row["cells"][0]["status"]) for row in failures] == [(0, "failed"), (1, "failed")]
    assert failures[0]["cells"][0]["error"]
    retried = api.post(f"{base}/retry-errors/")
    assert (retried.status_code, retried.data["retried"], retried.data["status"]) == (202, 2, "running")
    assert drive_to_end(experiment["id"]).succeeded == 3
    assert api.get(f"{base}/results/?filter=failures").data["results"] == []
    assert api.post(f"{base}/retry-errors/").data["retried"] == 0
    assert fake_llm.stats()["chat_requests"] == 5


def test_results_come_by_page_with_a_cell_per_variant_linking_its_run(api: APIClient, setup, fake_llm) -> None:  # type: ignore[no-untyped-def]
    experiment = _created(api, {**setup["body"], "repeats": 2})
    base = f"/api/experiments/{experiment['id']}"
    drive_to_end(experiment["id"])
    first = api.get(f"{base}/results/?page_size=4").data
    assert [(row["position"], row["repeat"]) for row in first["results"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert first["previous"] is None and "page=2" in first["next"]
    second = api.get(first["next"]).data
    assert [(row["position"], row["repeat"]) for row in second["results"]] == [(2, 0), (2, 1)]
    assert second["next"] is None and second["previous"] is not None
    row = first["results"][0]
    assert (row["inputs"], row["expected"]) == ({"topic": "t0"}, "e0")
    assert [cell["variant"] for cell in row["cells"]] == [f"r{setup['first'].number}", "detailed"]
    for cell in row["cells"]:
        run = Run.objects.get(pk=cell["run_id"])
        assert (cell["status"], cell["output"], cell["latency_ms"]) == ("succeeded", run.output, run.latency_ms)
        assert cell["completion_tokens"] == run.completion_tokens
        assert api.get(cell["run_url"]).data["id"] == run.pk
    # The two releases ask differently, so the fake server's echo differs: every row disagrees.
    assert len(api.get(f"{base}/results/?filter=disagree").data["results"]) == 6
    assert api.get(f"{base}/results/?filter=all").data == {"filter": ["“all” is not one of: failures, disagree."]}
    assert list(api.get(f"{base}/results/?page=0").data) == ["page"]
    alone = _created(api, {**setup["body"], "variants": [{"release": setup["first"].pk}]})
    drive_to_end(alone["id"])
    assert api.get(f"/api/experiments/{alone['id']}/results/?filter=disagree").data["results"] == []


def _export(api: APIClient, experiment_id: int, fmt: str) -> tuple[Any, str]:
    response = api.get(f"/api/experiments/{experiment_id}/export/?format={fmt}")
    assert response.status_code == 200
    return response, b"".join(response.streaming_content).decode()


def test_export_streams_csv_and_jsonl_with_a_line_per_case_and_columns_per_variant(api: APIClient, setup) -> None:  # type: ignore[no-untyped-def]
    experiment = _created(api, setup["body"])
    drive_to_end(experiment["id"])
    response, text = _export(api, experiment["id"], "csv")
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == f'attachment; filename="experiment-{experiment["id"]}.csv"'
    rows = list(csv.reader(io.StringIO(text)))
    first_name = f"r{setup['first'].number}"
    assert rows[0][:5] == ["position", "row_id", "repeat", "topic", "expected"]
    assert f"{first_name}.output" in rows[0] and "detailed.run_id" in rows[0] and "detailed.cost" in rows[0]
    assert len(rows) == 1 + 3
    by_column = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [(r["topic"], r["expected"], r[f"{first_name}.status"]) for r in by_column] == [
        ("t0", "e0", "succeeded"), ("t1", "e1", "succeeded"), ("t2", "e2", "succeeded")]
    assert by_column[0]["detailed.output"] == Run.objects.get(pk=by_column[0]["detailed.run_id"]).output
    response, text = _export(api, experiment["id"], "jsonl")
    assert response["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["position"] for line in lines] == [0, 1, 2]
    assert set(lines[0]["variants"]) == {first_name, "detailed"}
    assert lines[0]["variants"]["detailed"]["status"] == "succeeded"
    bad = api.get(f"/api/experiments/{experiment['id']}/export/?format=xml")
    assert (bad.status_code, list(bad.json())) == (400, ["format"])
    assert api.get(f"/api/experiments/{experiment['id']}/export/").status_code == 400


def test_the_schema_describes_the_routes(api: APIClient) -> None:
    schema = api.get("/api/schema/?format=json").json()
    for path in ("/api/experiments/", "/api/experiments/{id}/", "/api/experiments/{id}/cancel/",
                 "/api/experiments/{id}/retry-errors/", "/api/experiments/{id}/results/",
                 "/api/experiments/{id}/export/"):
        assert path in schema["paths"], path


def test_export_under_asgi_streams_the_same_lines(api: APIClient, setup, user) -> None:  # type: ignore[no-untyped-def]
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    experiment = _created(api, setup["body"])
    drive_to_end(experiment["id"])
    _, expected = _export(api, experiment["id"], "jsonl")

    async def fetch() -> bytes:
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.get(f"/api/experiments/{experiment['id']}/export/?format=jsonl")
        assert response.status_code == 200 and response.is_async
        return b"".join([chunk async for chunk in response.streaming_content])

    assert async_to_sync(fetch)().decode() == expected
