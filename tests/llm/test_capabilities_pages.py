"""What the server accepts, on the endpoint's edit page: shown to viewers, set and re-learned by changers."""
from collections.abc import Callable

import pytest
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


def choices(**chosen: str) -> dict[str, str]:
    return {**LEARN_ALL, **chosen}


def test_urls() -> None:
    assert reverse("endpoint-capability-set", args=[3]) == "/endpoints/3/capabilities/"
    assert reverse("endpoint-capabilities-relearn", args=[3]) == "/endpoints/3/capabilities/relearn/"


def test_viewers_see_each_model_with_value_source_and_evidence_but_no_controls(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint()
    learned_row(endpoint)
    services.capability_set(endpoint=endpoint, model=MODEL, values={"temperature": False})
    response = client_with_perms("llm.view_endpoint").get(edit_url(endpoint))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="capabilities"' in page and "What the server accepts" in page
    assert 'data-model="gpt-4o-mini"' in page and f'data-model="{MODEL}"' in page
    assert 'data-field="structured_output" data-source="learned"' in page
    assert "json_object: any JSON, checked against the schema here" in page
    assert 'title="response_format json_schema is not supported"' in page
    assert 'data-field="temperature" data-source="set by a person"' in page
    assert "<select" not in page.split('id="capabilities"')[1]
    assert 'id="relearn-capabilities"' not in page and 'id="capability-new-form"' not in page


def test_changers_get_a_choice_per_field_with_a_persons_value_preselected(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint()
    services.capability_set(endpoint=endpoint, model=MODEL, values={"temperature": False})
    page = client_with_perms("llm.view_endpoint", "llm.change_endpoint").get(edit_url(endpoint)).content.decode()
    section = page.split(f'data-model="{MODEL}"')[1].split("</form>")[0]
    assert f'name="model" value="{MODEL}"' in section
    assert '<option value="false" selected>no</option>' in section
    assert '<option value="learn" selected>learn</option>' in section  # the fields nobody set
    assert 'id="relearn-capabilities"' in page and 'id="capability-new-form"' in page


def test_anonymous_visitors_are_sent_to_log_in(client: Client) -> None:
    endpoint = make_endpoint()
    for url in (set_url(endpoint), relearn_url(endpoint)):
        response = client.post(url, choices(model="x", temperature="false"))
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    assert not Capability.objects.exists()


def test_viewers_and_strangers_may_not_set_or_reset(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint()
    learned_row(endpoint)
    for browser in (client_with_perms("llm.view_endpoint"), client_with_perms("payloads.view_payload")):
        assert browser.post(set_url(endpoint), choices(model="gpt-4o-mini", temperature="false")).status_code == 403
        assert browser.post(relearn_url(endpoint)).status_code == 403
        assert browser.get(set_url(endpoint)).status_code in (403, 405)
    row = Capability.objects.get()
    assert row.overridden == [] and row.temperature is True and row.structured_output == "json_object"


def test_setting_one_field_keeps_what_was_learned_about_the_others(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint()
    learned_row(endpoint)
    browser = client_with_perms("llm.view_endpoint", "llm.change_endpoint")
    response = browser.post(set_url(endpoint), choices(model="gpt-4o-mini", temperature="false", reasoning_field="none"))
    assert response.status_code == 302 and response["Location"] == edit_url(endpoint) + "#capabilities"
    row = Capability.objects.get()
    assert row.overridden == ["reasoning_field", "temperature"]
    assert (row.temperature, row.reasoning_field) == (False, "")
    assert row.structured_output == "json_object" and "structured_output" in row.evidence
    page = browser.get(edit_url(endpoint)).content.decode()
    assert "Capabilities of “gpt-4o-mini” saved." in page
    assert 'data-field="temperature" data-source="set by a person"' in page
    assert 'data-field="structured_output" data-source="learned"' in page


def test_learn_hands_a_persons_value_back_to_learning(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint()
    services.capability_set(endpoint=endpoint, model=MODEL, values={"temperature": False, "stream_options": False})
    browser = client_with_perms("llm.view_endpoint", "llm.change_endpoint")
    assert browser.post(set_url(endpoint), choices(model=MODEL, stream_options="false")).status_code == 302
    row = Capability.objects.get()
    assert row.overridden == ["stream_options"]
    assert row.temperature is True and row.stream_options is False


def test_another_model_with_slashes_and_colons_can_be_given_values(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint()
    browser = client_with_perms("llm.view_endpoint", "llm.change_endpoint")
    response = browser.post(set_url(endpoint), choices(new="1", model=MODEL, token_limit_param="max_completion_tokens"))
    assert response.status_code == 302
    row = Capability.objects.get(endpoint=endpoint, model=MODEL)
    assert row.token_limit_param == "max_completion_tokens" and row.overridden == ["token_limit_param"]
    assert f'data-model="{MODEL}"' in browser.get(edit_url(endpoint)).content.decode()


def test_another_model_with_nothing_chosen_is_refused_keeping_the_typed_name(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint()
    response = client_with_perms("llm.view_endpoint", "llm.change_endpoint").post(set_url(endpoint), choices(new="1", model=MODEL))
    assert response.status_code == 400
    page = response.content.decode()
    assert "Choose a value for at least one capability" in page
    new_form = page.split('id="capability-new-form"')[1].split("</form>")[0]
    assert f'value="{MODEL}"' in new_form
    assert "<details class=\"capability-new\" open>" in page
    assert not Capability.objects.exists()


def test_a_bad_value_is_shown_at_its_field_and_the_other_choices_are_kept(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint()
    learned_row(endpoint)
    browser = client_with_perms("llm.view_endpoint", "llm.change_endpoint")
    response = browser.post(set_url(endpoint), choices(model="gpt-4o-mini", structured_output="xml", temperature="false"))
    assert response.status_code == 400
    page = response.content.decode()
    section = page.split('data-model="gpt-4o-mini"')[1].split("</form>")[0]
    row_html = section.split('data-field="structured_output"')[1].split("</tr>")[0]
    assert 'class="capability-choice has-error"' in row_html and "Select a valid choice" in row_html
    temperature = section.split('data-field="temperature"')[1].split("</tr>")[0]
    assert '<option value="false" selected>no</option>' in temperature
    row = Capability.objects.get()
    assert row.overridden == [] and row.temperature is True and row.structured_output == "json_object"


def test_a_model_name_too_long_is_refused_on_the_new_form(client_with_perms: Callable[..., Client]) -> None:
    endpoint = make_endpoint()
    response = client_with_perms("llm.view_endpoint", "llm.change_endpoint").post(
        set_url(endpoint), choices(new="1", model="m" * 201, temperature="false"))
    assert response.status_code == 400
    new_form = response.content.decode().split('id="capability-new-form"')[1].split("</form>")[0]
    assert "at most 200 characters" in new_form
    assert not Capability.objects.exists()


def test_reset_and_relearn_forgets_every_model_and_learns_the_default_one_again(
        client_with_perms: Callable[..., Client], fake_llm: FakeLLM) -> None:
    endpoint = make_endpoint(fake_llm.base_url, name="local")
    services.capability_set(endpoint=endpoint, model="gpt-4o-mini", values={"structured_output": "json_schema"})
    services.capability_set(endpoint=endpoint, model=MODEL, values={"temperature": False})
    fake_llm.control(reject_response_format=True)
    response = client_with_perms("llm.view_endpoint", "llm.change_endpoint").post(relearn_url(endpoint))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="relearn-report"' in page and 'id="checks-summary"' in page
    assert "Forgot what was known about 2 models" in page
    assert f'data-model="{MODEL}"' not in page
    row = Capability.objects.get(endpoint=endpoint)
    # The person's json_schema was forgotten, so the refusal of every response_format was learned.
    assert (row.model, row.structured_output, row.overridden) == ("gpt-4o-mini", "prompt", [])
    assert "response_format" in row.evidence["structured_output"]["said"]
    assert 'data-field="structured_output" data-source="learned"' in page
    assert "<code class=\"chip\">structured_output = &#x27;prompt&#x27;</code>" in page


def test_reset_and_relearn_shows_a_failing_server_and_still_forgets(
        client_with_perms: Callable[..., Client], fake_llm: FakeLLM) -> None:
    endpoint = make_endpoint(fake_llm.base_url, name="local")
    services.capability_set(endpoint=endpoint, model="gpt-4o-mini", values={"temperature": False})
    fake_llm.fail_next({"status": 500, "message": "upstream exploded"})
    response = client_with_perms("llm.view_endpoint", "llm.change_endpoint").post(relearn_url(endpoint))
    assert response.status_code == 200
    page = response.content.decode()
    assert ">does not work<" in page and "upstream exploded" in page
    assert all(row.overridden == [] for row in Capability.objects.all())
