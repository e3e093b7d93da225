"""Helpers for the client tests of the run pages' extras: finished runs recorded in the real database."""
from __future__ import annotations

import datetime
import itertools
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from runs.models import Response, Run, RunStatus
from runs.services import run_start
from tests.factories import make_chain, make_endpoint
from workflows.models import Workflow

PASSWORD = "pw-for-tests-only"
PLANTED_KEY = "sk-planted-secret-0123456789"
_user_numbers = itertools.count()


def client_with(*perms: str, enforce_csrf_checks: bool = False) -> Client:
    name = f"u{next(_user_numbers)}-{'-'.join(perms)}"[:150]
    user = get_user_model().objects.create_user(name, password=PASSWORD)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    client.force_login(user)
    return client


def finished_run(workflow: Workflow, inputs: dict[str, str], outputs: list[str], *, latencies: list[int] | None = None,
                 created_at: datetime.datetime | None = None, status: str = RunStatus.SUCCEEDED) -> Run:
    """A run as the runner leaves it: one response per output, totals summed, final status."""
    run = run_start(workflow=workflow, inputs=inputs, user=None)
    latencies = latencies or [1000 + 100 * i for i in range(len(outputs))]
    keys = [step["output_key"] for step in run.snapshot["steps"]]
    for index, output in enumerate(outputs):
        Response.objects.create(
            run=run, index=index, output_key=keys[index], payload_name=f"{workflow.name}-{keys[index]}",
            status="succeeded", output=output, prompt_tokens=10 + index, completion_tokens=5 + index,
            latency_ms=latencies[index], model="gpt-4o-mini", endpoint_name="fake",
            messages=[{"role": "user", "content": f"Step {index} about {inputs.get('topic', '')}."}],
        )
    fields: dict[str, Any] = {
        "status": status, "next_step": len(outputs), "started_at": run.created_at, "finished_at": run.created_at,
        "prompt_tokens": sum(10 + i for i in range(len(outputs))),
        "completion_tokens": sum(5 + i for i in range(len(outputs))), "latency_ms": sum(latencies),
        "output": outputs[-1] if outputs else "",
    }
    if created_at is not None:
        fields["created_at"] = created_at
    Run.objects.filter(pk=run.pk).update(**fields)
    run.refresh_from_db()
    return run


@pytest.fixture
def article(db) -> Workflow:  # type: ignore[no-untyped-def]
    workflow = make_chain(make_endpoint(name="Secret endpoint", api_key=PLANTED_KEY), name="Article")
    workflow.inputs = [{"name": "topic", "description": "What the article is about."},
                       {"name": "tone", "default": "plain"}]
    workflow.save()
    return workflow
