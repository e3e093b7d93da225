"""The runs API: start, list and filter, detail, cancel, re-run and replay (with bad input)."""
import pytest
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient

from llm import client
from runs.engine import execute_run
from runs.models import Response, Run
from tests.factories import make_chain, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)


def finish(run_id: int) -> None:
    async def run_and_close() -> None:
        await execute_run(run_id)
        await client.aclose_all()

    async_to_sync(run_and_close)()


def test_start_list_filter_and_detail(api, fake_llm):
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    created = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "tides"}}, format="json")
    assert created.status_code == 201
    run_id = created.json()["id"]
    finish(run_id)
    api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "storms"}}, format="json")
    listed = api.get("/api/runs/", {"status": "succeeded"}).json()
    assert [r["id"] for r in listed["results"]] == [run_id]
    assert len(api.get("/api/runs/", {"workflow": workflow.pk}).json()["results"]) == 2
    assert api.get("/api/runs/", {"status": "nonsense"}).status_code == 400
    detail = api.get(f"/api/runs/{run_id}/").json()
    assert detail["status"] == "succeeded" and detail["total_tokens"] == detail["prompt_tokens"] + 60
    assert [(r["index"], r["output_key"], r["status"]) for r in detail["responses"]] == [
        (0, "outline", "succeeded"), (1, "paragraph", "succeeded"), (2, "summary", "succeeded")]
    assert {"output", "prompt_tokens", "completion_tokens", "latency_ms", "error"} <= set(detail["responses"][0])


@pytest.mark.parametrize(
    ("body", "field"),
    [({"inputs": "tides"}, "inputs"), ({"inputs": {"topic": "x"}, "extra": 1}, "extra"),
     ({"inputs": {"topic": "x", "other": "y"}}, "inputs")],
)
def test_bad_start_requests_are_400_naming_the_field_and_create_nothing(api, fake_llm, body, field):
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    response = api.post(f"/api/workflows/{workflow.pk}/runs/", body, format="json")
    assert response.status_code == 400 and field in response.json()
    assert Run.objects.count() == 0


def test_a_workflow_with_problems_cannot_be_run(api, fake_llm):
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    workflow.steps.order_by("position").first().delete()  # step 2 now reads `previous` first
    response = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "x"}}, format="json")
    assert response.status_code == 400
    assert "no previous step" in response.json()["workflow"][0]


def test_cancel_a_queued_run_and_cancel_again(api, fake_llm):
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    run_id = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "x"}}, format="json").json()["id"]
    response = api.post(f"/api/runs/{run_id}/cancel/")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    assert api.post(f"/api/runs/{run_id}/cancel/").json()["status"] == "cancelled"
    assert fake_llm.stats()["chat_requests"] == 0


def test_rerun_and_replay_from_a_step_with_edited_inputs(api, fake_llm):
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    source = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "tides"}}, format="json").json()["id"]
    finish(source)
    rerun = api.post(f"/api/runs/{source}/rerun/", {}, format="json")
    assert rerun.status_code == 201 and rerun.json()["inputs"] == {"topic": "tides"}
    replay = api.post(f"/api/runs/{source}/rerun/", {"from_step": 2, "inputs": {"topic": "waves"}}, format="json")
    assert replay.status_code == 201
    body = replay.json()
    assert body["source_run"] == source and body["replay_from_step"] == 2 and body["inputs"] == {"topic": "waves"}
    assert [r["status"] for r in body["responses"]] == ["copied", "copied"]
    before = fake_llm.stats()["chat_requests"]
    finish(body["id"])
    assert fake_llm.stats()["chat_requests"] == before + 1
    assert Response.objects.filter(run_id=body["id"]).count() == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [({"from_step": 7}, "from_step"), ({"from_step": -1}, "from_step"), ({"from_step": "two"}, "from_step"),
     ({"inputs": {"nope": "x"}}, "inputs"), ({"surprise": True}, "surprise")],
)
def test_bad_replays_are_400_naming_the_field(api, fake_llm, body, field):
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    source = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "tides"}}, format="json").json()["id"]
    finish(source)
    response = api.post(f"/api/runs/{source}/rerun/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert Run.objects.count() == 1


def test_replay_needs_finished_steps_before_from_step(api, fake_llm):
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    source = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "tides"}}, format="json").json()["id"]
    response = api.post(f"/api/runs/{source}/rerun/", {"from_step": 1}, format="json")
    assert response.status_code == 400
    assert "no finished response for every step before step 2" in response.json()["from_step"][0]


def test_cancelling_needs_the_change_permission_not_just_add(fake_llm, django_user_model):
    from django.contrib.auth.models import Permission

    workflow = make_chain(make_endpoint(fake_llm.base_url))
    starter = django_user_model.objects.create_user("starter", password="pw")
    starter.user_permissions.set(Permission.objects.filter(codename__in=["add_run", "view_run"]))
    client = APIClient()
    client.force_authenticate(starter)
    run_id = client.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "x"}}, format="json").json()["id"]
    assert client.post(f"/api/runs/{run_id}/cancel/").status_code == 403
    assert Run.objects.get(pk=run_id).status == "queued"
    starter.user_permissions.add(Permission.objects.get(codename="change_run"))
    client = APIClient()
    client.force_authenticate(django_user_model.objects.get(pk=starter.pk))
    assert client.post(f"/api/runs/{run_id}/cancel/").status_code == 202


def test_reruns_share_the_per_user_run_throttle(api, fake_llm, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "runs", "2/minute")
    cache.clear()
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    source = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "tides"}}, format="json").json()["id"]
    assert api.post(f"/api/runs/{source}/rerun/", {}, format="json").status_code == 201
    assert api.post(f"/api/runs/{source}/rerun/", {}, format="json").status_code == 429
    cache.clear()


def test_actions_answer_with_a_format_suffix(api, fake_llm):
    workflow = make_chain(make_endpoint(fake_llm.base_url))
    assert api.get(f"/api/workflows/{workflow.pk}/validate.json").status_code == 200
    assert api.get(f"/api/workflows/{workflow.pk}/export.json").status_code == 200
    run_id = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "x"}}, format="json").json()["id"]
    assert api.post(f"/api/runs/{run_id}/cancel.json").status_code == 202


def test_costs_and_budgets_in_the_api(api, fake_llm):
    """Each step's cost as a decimal string with its provenance, the run's total per currency, and
    a budget given at the start (a bad one is a 400 naming the field)."""
    import datetime
    from decimal import Decimal

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from prices.models import Price
    from prices.services import price_save

    workflow = make_chain(make_endpoint(fake_llm.base_url))
    entry = price_save(Price(model="gpt-4o-mini", effective_from=timezone.now() - datetime.timedelta(days=1),
                             input_per_million=Decimal("0.15"), output_per_million=Decimal("0.6")))
    bad = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "x"}, "budget": "-2"}, format="json")
    assert bad.status_code == 400 and "budget" in bad.json()
    mixed = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": "x"}, "budget": "1",
                                                             "budget_currency": "EUR"}, format="json")
    assert mixed.status_code == 400 and "priced in USD" in mixed.json()["budget_currency"][0]
    assert Run.objects.count() == 0
    run_ids = []
    for topic in ("tides", "storms"):
        created = api.post(f"/api/workflows/{workflow.pk}/runs/", {"inputs": {"topic": topic}, "budget": "0.5"},
                           format="json")
        assert created.status_code == 201 and created.json()["budget"] == "0.500000000"
        finish(created.json()["id"])
        run_ids.append(created.json()["id"])
    detail = api.get(f"/api/runs/{run_ids[0]}/").json()
    steps = Response.objects.filter(run_id=run_ids[0]).order_by("index")
    for shown, step in zip(detail["responses"], steps, strict=True):
        assert Decimal(shown["cost"]) * 10**9 == step.cost_nano
        assert (shown["cost_currency"], shown["cost_source"], shown["price_id"], shown["cost_estimated"]) == (
            "USD", "computed", entry.pk, False)
    total = sum(Decimal(s["cost"]) for s in detail["responses"])
    assert detail["cost"] == {"amounts": {"USD": str(total)}, "unpriced_steps": 0, "estimated": False,
                              "text": detail["cost"]["text"]} and detail["cost"]["text"].startswith("$0.0000")
    api.get("/api/runs/", {"workflow": workflow.pk, "page_size": 1})  # warm: the first request reads more
    with CaptureQueriesContext(connection) as one_page:
        listed = api.get("/api/runs/", {"workflow": workflow.pk}).json()["results"]
    assert {r["id"]: r["cost"] for r in listed}[run_ids[0]] == detail["cost"]
    with CaptureQueriesContext(connection) as fewer:
        api.get("/api/runs/", {"workflow": workflow.pk, "page_size": 1})
    assert len(one_page) == len(fewer)  # the page's costs are one query, whatever its length
