import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from blocks.models import Block
from llm.models import Endpoint
from payloads.models import Payload, PayloadBlock
from runs.engine import execute_run
from runs.models import Response, Run
from runs.services import run_start
from workflows.models import Step, Workflow
from workflows.services import workflow_problems

MODELS = [get_user_model(), Endpoint, Block, Payload, PayloadBlock, Workflow, Step]


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


@pytest.mark.django_db
def test_seeding_twice_creates_nothing_new_and_prints_the_password_once(seed_demo, monkeypatch):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    first = seed_demo()
    after_first = counts()
    second = seed_demo()
    assert counts() == after_first
    # The demo's 3-step chain, the 3-step "Claims" flow, and the two default judges (one step each).
    assert after_first["User"] == 1 and after_first["Workflow"] == 4 and after_first["Step"] == 8
    password = re.search(r"password: (\S+)", first).group(1)
    assert password not in second and "created" not in second


@pytest.mark.django_db
def test_admin_password_comes_from_the_environment_and_is_never_reset(seed_demo, monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", "demo-pass-123")
    out = seed_demo()
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("demo-pass-123")
    assert "demo-pass-123" not in out
    monkeypatch.setenv("ADMIN_PASSWORD", "another-pass-456")
    seed_demo()
    admin.refresh_from_db()
    assert admin.check_password("demo-pass-123")


@pytest.mark.django_db
def test_existing_admin_user_keeps_its_password(seed_demo, django_user_model, monkeypatch):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    django_user_model.objects.create_user("admin", password="mine-already")
    out = seed_demo()
    assert django_user_model.objects.get(username="admin").check_password("mine-already")
    assert "created admin" not in out and "mine-already" not in out


def login_block(out: str) -> list[str]:
    """The lines between the last two rules, which must end the output."""
    lines = out.rstrip("\n").splitlines()
    assert set(lines[-1]) == {"="}, "the log-in block is not the last thing printed"
    start = max(i for i, line in enumerate(lines[:-1]) if set(line) == {"="})
    return lines[start + 1:-1]


@pytest.mark.django_db
def test_the_login_block_comes_last_with_the_url_the_user_and_a_password_that_works(seed_demo, monkeypatch):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    block = "\n".join(login_block(seed_demo("--site-url", "http://127.0.0.1:9000/")))
    assert "http://127.0.0.1:9000/accounts/login/" in block and "http://127.0.0.1:9000/admin/" in block
    assert "user: admin" in block
    password = re.search(r"password: (\S+)", block).group(1)
    assert get_user_model().objects.get(username="admin").check_password(password)
    assert "manage.py changepassword admin" in block


@pytest.mark.django_db
def test_later_starts_end_with_how_to_reset_the_password_instead_of_a_password(seed_demo, monkeypatch):
    monkeypatch.delenv("ADMIN_PASSWORD", raising=False)
    first = seed_demo()
    password = re.search(r"password: (\S+)", first).group(1)
    block = "\n".join(login_block(seed_demo("--site-url", "http://127.0.0.1:9000/")))
    assert password not in block and "user: admin" in block
    assert ".venv/bin/python manage.py changepassword admin" in block


@pytest.mark.django_db
def test_mock_endpoint_points_at_the_given_url_and_follows_it(seed_demo):
    seed_demo("--fake-llm-url", "http://127.0.0.1:9101/v1")
    endpoint = Endpoint.objects.get(name="Local mock LLM")
    assert endpoint.is_mock and endpoint.default_model == "gpt-4o-mini"
    assert endpoint.base_url == "http://127.0.0.1:9101/v1"
    seed_demo("--fake-llm-url", "http://127.0.0.1:9102/v1")
    endpoint.refresh_from_db()
    assert endpoint.base_url == "http://127.0.0.1:9102/v1"
    assert Endpoint.objects.count() == 1


@pytest.mark.django_db
def test_openai_endpoint_is_seeded_with_an_encrypted_key_when_the_env_has_one(seed_demo, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-123")
    out = seed_demo()
    seed_demo()
    endpoint = Endpoint.objects.get(name="OpenAI")
    assert endpoint.base_url == "https://api.openai.com/v1" and not endpoint.is_mock
    assert endpoint.api_key == "sk-from-env-123"
    assert "sk-from-env-123" not in endpoint.api_key_encrypted
    assert "sk-from-env-123" not in out
    assert Endpoint.objects.filter(name="OpenAI").count() == 1


@pytest.mark.django_db
def test_no_openai_endpoint_without_a_key(seed_demo, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    seed_demo()
    assert not Endpoint.objects.filter(name="OpenAI").exists()


@pytest.mark.django_db
def test_demo_has_a_streamed_payload_and_a_system_block(seed_demo):
    seed_demo()
    assert Payload.objects.filter(stream=True).exists()
    assert PayloadBlock.objects.filter(role="system").exists()


@pytest.mark.django_db
def test_demo_workflow_has_no_validation_problems(seed_demo):
    seed_demo()
    workflow = Workflow.objects.get(name="Article")
    assert workflow.input_names == ["topic"]
    assert [s.output_key for s in workflow.steps.order_by("position")] == ["outline", "paragraph", "summary"]
    assert workflow_problems(workflow) == []


@pytest.mark.django_db(transaction=True)
async def test_demo_workflow_runs_to_success_against_the_fake_llm(seed_demo, fake_llm):
    def setup() -> Run:
        seed_demo("--fake-llm-url", fake_llm.base_url)
        workflow = Workflow.objects.get(name="Article")
        return run_start(workflow=workflow, inputs={"topic": "volcanoes"}, user=None)

    run = await sync_to_async(setup)()
    status = await execute_run(run.pk)
    assert status == "succeeded"
    run = await Run.objects.aget(pk=run.pk)
    responses = [r async for r in Response.objects.filter(run=run).order_by("index")]
    assert [r.output_key for r in responses] == ["outline", "paragraph", "summary"]
    assert "volcanoes" in responses[0].messages[-1]["content"]
    assert responses[0].messages[0]["role"] == "system"
    # Step 2 reads step 1's output by its key; step 3 reads it as `previous`.
    assert responses[0].output in responses[1].messages[-1]["content"]
    assert responses[1].output in responses[2].messages[-1]["content"]
    assert run.output == responses[2].output != ""
    assert fake_llm.stats()["chat_requests"] == 3


@pytest.mark.django_db(transaction=True)
async def test_the_demo_claims_workflow_maps_over_its_default_list_and_skips_the_translation(seed_demo, fake_llm):
    await sync_to_async(seed_demo)("--fake-llm-url", fake_llm.base_url)
    workflow = await Workflow.objects.aget(name="Claims")
    assert await sync_to_async(workflow_problems)(workflow) == []
    run = await sync_to_async(run_start)(workflow=workflow, inputs={}, user=None)
    assert await execute_run(run.pk) == "succeeded"
    rows = [(r.output_key, r.item, r.status) async for r in Response.objects.filter(run=run).order_by("index", "item")]
    assert rows == [("checks", 0, "succeeded"), ("checks", 1, "succeeded"), ("checks", 2, "succeeded"),
                    ("checks", 3, "succeeded"), ("translated", 0, "skipped"), ("verdict", 0, "succeeded")]
