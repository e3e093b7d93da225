"""The admin shows and saves a step's control flow (issue 22), the workflow's max_parallel, warnings,
and a response's map item."""
import pytest
from django.urls import reverse

from runs.models import Response
from tests.admin.test_builders import inline_post_data
from workflows.models import Step

pytestmark = pytest.mark.django_db


def test_the_step_inline_saves_the_flow_fields_and_the_workflow_its_limit(admin_client, demo):
    workflow = demo.workflow
    outline, summary = workflow.steps.order_by("position")
    data = {"name": workflow.name, "description": "", "inputs": '[{"name": "topic"}, {"name": "audience"}]',
            "max_parallel": 7,
            **inline_post_data("steps", [
                {"id": outline.pk, "workflow": workflow.pk, "payload": demo.payload.pk, "output_key": "outline",
                 "position": 1, "when": "", "item_as": "", "on_error": ""},
                {"id": summary.pk, "workflow": workflow.pk, "payload": demo.summary.pk, "output_key": "summary",
                 "position": 2, "when": 'audience != "none"', "default": "-", "for_each": "outline",
                 "item_as": "line", "max_parallel": 2, "on_error": "skip"},
            ], initial=2)}
    response = admin_client.post(reverse("admin:workflows_workflow_change", args=[workflow.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    workflow.refresh_from_db()
    assert workflow.max_parallel == 7
    first, second = workflow.steps.order_by("position")
    assert (first.item_as, first.on_error) == ("item", "fail")  # left empty: the defaults
    assert (second.when, second.default, second.for_each, second.item_as, second.max_parallel, second.on_error) == (
        'audience != "none"', "-", "outline", "line", 2, "skip")
    page = admin_client.get(reverse("admin:workflows_workflow_change", args=[workflow.pk])).content.decode()
    assert 'name="steps-1-for_each"' in page and 'value="line"' in page
    assert "for each <code>line</code> in <code>outline</code>" in page


def test_a_bad_on_error_is_an_error_at_the_field(admin_client, demo):
    workflow = demo.workflow
    outline, _summary = workflow.steps.order_by("position")
    data = {"name": workflow.name, "description": "", "inputs": '[{"name": "topic"}, {"name": "audience"}]',
            **inline_post_data("steps", [
                {"id": outline.pk, "workflow": workflow.pk, "payload": demo.payload.pk, "output_key": "outline",
                 "position": 1, "on_error": "retry", "item_as": "two words"},
            ], initial=2)}
    response = admin_client.post(reverse("admin:workflows_workflow_change", args=[workflow.pk]), data)
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.forms[0].errors
    assert set(errors) == {"on_error", "item_as"}
    assert Step.objects.get(pk=outline.pk).on_error == "fail"


def test_the_workflow_page_shows_warnings_and_what_each_step_waits_for(admin_client, demo):
    Step.objects.filter(workflow=demo.workflow, output_key="outline").update(when="topic")
    page = admin_client.get(reverse("admin:workflows_workflow_change", args=[demo.workflow.pk])).content.decode()
    assert 'id="warnings"' in page and "Warning, step 2" in page
    assert "<th>waits for</th>" in page


def test_the_run_page_shows_a_responses_item_and_its_value(admin_client, demo):
    Response.objects.create(run=demo.run, index=1, item=1, item_value={"claim": "tides <rise>"}, output_key="summary",
                            payload_name="summary", status="succeeded", output="item answer")
    page = admin_client.get(reverse("admin:runs_run_change", args=[demo.run.pk])).content.decode()
    assert "Item value" in page
    assert "&quot;claim&quot;: &quot;tides &lt;rise&gt;&quot;" in page
