"""What the server accepts, on the endpoint's edit page: shown to viewers, set and re-learned by changers."""
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from llm import services
from llm.models import Capability, Endpoint
from tests.factories import make_endpoint
from tests.fake_llm import FakeLLM

pytestmark = pytest.mark.django_db

MODEL = "meta-llama/Llama-3.1-8B:q4"
LEARN_ALL = {"structured_output": "learn", "stream_options": "learn", "stream_usage": "learn",
             "token_limit_param": "learn", "temperature": "learn", "reasoning_field": "learn"}


@pytest.fixture
def client_with(django_user_model: Any) -> Callable[..., Client]:
    def make(*perms: str) -> Client:
        person = django_user_model.objects.create_user(f"p{django_user_model.objects.count()}", password="x")
        for perm in perms:
            app_label, codename = perm.split(".")
            person.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        client = Client()
        client.force_login(person)
        return client
    return make


def edit_url(endpoint: Endpoint) -> str:
    return reverse("endpoint-edit", args=[endpoint.pk])


def set_url(endpoint: Endpoint) -> str:
    return reverse("endpoint-capability-set", args=[endpoint.pk])


def relearn_url(endpoint: Endpoint) -> str:
    return reverse("endpoint-capabilities-relearn", args=[endpoint.pk])


def learned_row(endpoint: Endpoint, model: str = "gpt-4o-mini") -> Capability:
    services.capability_learn(endpoint_id=endpoint.pk, model=model, changes={"structured_output": "json_object"},
                              evidence={"structured_output": "response_format json_schema is not supported"})
    return Capability.objects.get(endpoint=endpoint, model=model)


def test_smoke(client_with: Callable[..., Client]) -> None:
    endpoint = make_endpoint()
    learned_row(endpoint)
    services.capability_set(endpoint=endpoint, model=MODEL, values={"temperature": False})
    page = client_with("llm.view_endpoint", "llm.change_endpoint").get(edit_url(endpoint)).content.decode()
    open("/tmp/capt/page.html", "w").write(page)
