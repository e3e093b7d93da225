"""Capabilities in the admin: listed on the endpoint, set through capability_set, forgotten through capability_reset."""
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
ROW_FORM = {"structured_output": "json_schema", "stream_options": "on", "stream_usage": "on",
            "token_limit_param": "max_tokens", "temperature": "on", "reasoning_field": ""}


def learned(endpoint: Endpoint, model: str = "gpt-4o-mini") -> Capability:
    services.capability_learn(endpoint_id=endpoint.pk, model=model, changes={"structured_output": "json_object"},
                              evidence={"structured_output": "response_format is not supported"})
    return Capability.objects.get(endpoint=endpoint, model=model)


def staff(django_user_model: Any, *codenames: str) -> Client:
    user = django_user_model.objects.create_user(f"s{django_user_model.objects.count()}", password="x", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="llm", codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_the_endpoint_page_lists_its_capabilities_read_only(admin_client: Client) -> None:
    endpoint = make_endpoint()
    learned(endpoint)
    services.capability_set(endpoint=endpoint, model=MODEL, values={"temperature": False})
    page = admin_client.get(reverse("admin:llm_endpoint_change", args=[endpoint.pk])).content.decode()
    assert "What the server accepts" in page
    row = Capability.objects.get(model=MODEL)
    assert f'<a href="{reverse("admin:llm_capability_change", args=[row.pk])}">{MODEL}</a>' in page
    assert "structured_output: json_object: any JSON, checked against the schema here (learned)" in page
    assert "temperature: no (set by a person)" in page
    assert 'name="capabilities-0-structured_output"' not in page  # read-only


def test_changing_a_field_makes_it_a_persons_and_keeps_what_was_learned(admin_client: Client) -> None:
    row = learned(make_endpoint())
    url = reverse("admin:llm_capability_change", args=[row.pk])
    form = {**ROW_FORM, "structured_output": "json_object"}
    del form["temperature"]  # unticked: the model takes no temperature
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    row.refresh_from_db()
    assert row.overridden == ["temperature"] and row.temperature is False
    assert row.structured_output == "json_object" and "structured_output" in row.evidence


def test_ticking_learn_hands_a_field_back(admin_client: Client) -> None:
    endpoint = make_endpoint()
    row = services.capability_set(endpoint=endpoint, model=MODEL, values={"temperature": False, "stream_usage": False})
    form = {**ROW_FORM, "relearn": ["temperature"]}
    del form["temperature"], form["stream_usage"]
    assert admin_client.post(reverse("admin:llm_capability_change", args=[row.pk]), form).status_code == 302
    row.refresh_from_db()
    assert row.overridden == ["stream_usage"] and row.temperature is True


def test_adding_a_row_sets_the_changed_fields_and_a_bad_choice_is_refused(admin_client: Client) -> None:
    endpoint = make_endpoint()
    url = reverse("admin:llm_capability_add")
    refused = admin_client.post(url, {**ROW_FORM, "endpoint": endpoint.pk, "model": MODEL, "structured_output": "xml"})
    assert refused.status_code == 200 and "structured_output" in refused.context["adminform"].form.errors
    assert not Capability.objects.exists()
    response = admin_client.post(url, {**ROW_FORM, "endpoint": endpoint.pk, "model": MODEL,
                                       "token_limit_param": "max_completion_tokens"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    row = Capability.objects.get()
    assert (row.model, row.token_limit_param, row.overridden) == (MODEL, "max_completion_tokens", ["token_limit_param"])


def test_deleting_a_row_forgets_the_model(admin_client: Client) -> None:
    endpoint = make_endpoint()
    row, other = learned(endpoint), learned(endpoint, MODEL)
    assert admin_client.post(reverse("admin:llm_capability_delete", args=[row.pk]), {"post": "yes"}).status_code == 302
    assert list(Capability.objects.values_list("pk", flat=True)) == [other.pk]
    response = admin_client.post(reverse("admin:llm_capability_changelist"),
                                 {"action": "delete_selected", "_selected_action": [other.pk], "post": "yes"})
    assert response.status_code == 302
    assert not Capability.objects.exists()


def test_capabilities_follow_the_endpoint_permissions(django_user_model: Any) -> None:
    row = learned(make_endpoint())
    change = reverse("admin:llm_capability_change", args=[row.pk])
    viewer = staff(django_user_model, "view_endpoint")
    assert viewer.get(reverse("admin:llm_capability_changelist")).status_code == 200
    assert viewer.get(change).status_code == 200
    assert viewer.post(change, {**ROW_FORM, "structured_output": "prompt"}).status_code == 403
    assert viewer.get(reverse("admin:llm_capability_add")).status_code == 403
    assert viewer.post(reverse("admin:llm_capability_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    row.refresh_from_db()
    assert row.structured_output == "json_object" and row.overridden == []
    assert staff(django_user_model).get(reverse("admin:llm_capability_changelist")).status_code == 403
    changer = staff(django_user_model, "view_endpoint", "change_endpoint")
    assert changer.post(change, {**ROW_FORM, "structured_output": "prompt"}).status_code == 302


def test_the_relearn_action_forgets_and_learns_again(admin_client: Client, fake_llm: FakeLLM) -> None:
    endpoint = make_endpoint(fake_llm.base_url, name="local")
    services.capability_set(endpoint=endpoint, model=MODEL, values={"temperature": False})
    fake_llm.control(reject_response_format=True)
    response = admin_client.post(reverse("admin:llm_endpoint_changelist"),
                                 {"action": "relearn_capabilities", "_selected_action": [endpoint.pk]}, follow=True)
    text = "\n".join(str(message) for message in response.context["messages"])
    assert "local: forgot 1 model(s); gpt-4o-mini re-learned, connectivity test passed" in text
    assert "structured_output = 'prompt'" in text
    row = Capability.objects.get()
    assert (row.model, row.structured_output, row.overridden) == ("gpt-4o-mini", "prompt", [])


def test_the_relearn_action_needs_change_endpoint(django_user_model: Any) -> None:
    endpoint = make_endpoint()
    learned(endpoint)
    viewer = staff(django_user_model, "view_endpoint")
    page = viewer.get(reverse("admin:llm_endpoint_changelist")).content.decode()
    assert "relearn_capabilities" not in page
    viewer.post(reverse("admin:llm_endpoint_changelist"),
                {"action": "relearn_capabilities", "_selected_action": [endpoint.pk]})
    assert Capability.objects.count() == 1
