"""The builder pages: block validation, payload preview, workflow flow and problems, sortable inlines."""
from typing import Any

import pytest
from django.urls import reverse

from blocks.models import Block
from payloads.models import Payload, PayloadBlock
from tests.factories import make_block, make_payload
from workflows.models import Step

pytestmark = pytest.mark.django_db


def block_form(**fields: str) -> dict[str, str]:
    return {"name": "new-block", "description": "", "content": "Hello {{ name }}", **fields}


def test_block_with_a_template_that_does_not_parse_is_refused_with_the_line(admin_client, demo):
    response = admin_client.post(reverse("admin:blocks_block_add"),
                                 block_form(content="first line\n{% if topic %}never closed"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["content"]
    assert "does not parse" in errors[0] and "line 2" in errors[0]
    assert not Block.objects.filter(name="new-block").exists()


def test_block_saves_and_lists_its_variables(admin_client, demo):
    response = admin_client.post(reverse("admin:blocks_block_add"), block_form(content="{{ a }} and {{ b.c }}"))
    assert response.status_code == 302
    block = Block.objects.get(name="new-block")
    page = admin_client.get(reverse("admin:blocks_block_change", args=[block.pk])).content.decode()
    assert '<code class="ae-var">a</code>' in page and '<code class="ae-var">b</code>' in page
    assert 'class="ae-code"' in page  # the monospace editor


def test_block_list_shows_variables_and_the_payloads_using_it(admin_client, demo):
    page = admin_client.get(reverse("admin:blocks_block_changelist")).content.decode()
    assert '<code class="ae-var">audience</code>' in page
    assert reverse("admin:payloads_payload_change", args=[demo.payload.pk]) in page


def test_deleting_a_block_in_use_shows_what_protects_it(admin_client, demo):
    url = reverse("admin:blocks_block_delete", args=[demo.task.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "protected" in page.content.decode()
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 200
    assert Block.objects.filter(pk=demo.task.pk).exists()


def test_deleting_a_payload_in_use_by_a_workflow_is_refused_with_a_message(admin_client, demo):
    url = reverse("admin:payloads_payload_delete", args=[demo.payload.pk])
    assert "protected" in admin_client.get(url).content.decode()
    admin_client.post(url, {"post": "yes"})
    assert Payload.objects.filter(pk=demo.payload.pk).exists()


def test_bulk_delete_of_blocks_in_use_is_refused_not_a_500(admin_client, demo):
    response = admin_client.post(reverse("admin:blocks_block_changelist"), {
        "action": "delete_selected", "_selected_action": [demo.task.pk, demo.system.pk], "post": "yes"})
    assert response.status_code == 200
    assert Block.objects.filter(pk__in=[demo.task.pk, demo.system.pk]).count() == 2


def test_payload_preview_renders_the_chat_messages(admin_client, demo):
    url = reverse("admin:payloads_payload_change", args=[demo.payload.pk])
    response = admin_client.get(url, {"preview": "1", "var-topic": "tides", "var-audience": "<kids>"})
    assert response.status_code == 200
    assert response.context["preview"]["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Write about tides for <kids>."},
    ]
    page = response.content.decode()
    assert "Write about tides for &lt;kids&gt;." in page  # escaped in the page


def test_payload_preview_names_the_missing_variables(admin_client, demo):
    url = reverse("admin:payloads_payload_change", args=[demo.payload.pk])
    response = admin_client.get(url, {"preview": "1", "var-topic": "tides", "var-audience": ""})
    assert response.status_code == 200
    assert response.context["preview"]["missing"] == ["audience"]
    assert "Missing variables" in response.content.decode()


def test_payload_page_offers_one_preview_field_per_variable(admin_client, demo):
    response = admin_client.get(reverse("admin:payloads_payload_change", args=[demo.payload.pk]))
    assert [f["name"] for f in response.context["preview"]["fields"]] == ["audience", "topic"]
    assert response.context["preview"]["messages"] is None


def test_workflow_page_shows_variable_flow_and_no_problems(admin_client, demo):
    response = admin_client.get(reverse("admin:workflows_workflow_change", args=[demo.workflow.pk]))
    flow = response.context["variable_flow"]
    assert [step["output_key"] for step in flow] == ["outline", "summary"]
    assert {"variable": "previous", "block": "summary-task", "source": "step:outline"} in flow[1]["reads"]
    assert response.context["problems"] == []
    assert "No problems: this workflow can run." in response.content.decode()


def test_workflow_page_lists_the_problems_naming_step_and_block(admin_client, demo):
    broken = make_payload("broken", demo.endpoint, [("user", make_block("uses-ghost", "{{ ghost }}"))])
    Step.objects.create(workflow=demo.workflow, payload=broken, output_key="third", position=5)
    response = admin_client.get(reverse("admin:workflows_workflow_change", args=[demo.workflow.pk]))
    page = response.content.decode()
    assert "Step 3" in page and "uses-ghost" in page and "&#x27;ghost&#x27; is neither" in page
    assert "nothing provides it" in page


def inline_post_data(prefix: str, rows: list[dict[str, Any]], initial: int) -> dict[str, Any]:
    data: dict[str, Any] = {f"{prefix}-TOTAL_FORMS": len(rows), f"{prefix}-INITIAL_FORMS": initial,
                            f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000}
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"{prefix}-{i}-{key}"] = value
    return data


def test_reordering_payload_blocks_persists(admin_client, demo):
    payload = demo.payload
    system_pb, task_pb = payload.payload_blocks.order_by("position")
    data = {"name": payload.name, "description": "", "endpoint": demo.endpoint.pk, "model": "", "stream": "on",
            "structured_retries": 2, "extra_params": "{}", "stop": "", "json_schema": "",
            **inline_post_data("payload_blocks", [
                {"id": system_pb.pk, "payload": payload.pk, "block": demo.system.pk, "role": "system", "position": 2},
                {"id": task_pb.pk, "payload": payload.pk, "block": demo.task.pk, "role": "user", "position": 1},
            ], initial=2)}
    response = admin_client.post(reverse("admin:payloads_payload_change", args=[payload.pk]), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert [pb.block.name for pb in PayloadBlock.objects.filter(payload=payload).order_by("position")] == ["task", "system"]


def test_reordering_workflow_steps_persists_and_changes_validation(admin_client, demo):
    workflow = demo.workflow
    outline, summary = workflow.steps.order_by("position")
    data = {"name": workflow.name, "description": "", "inputs": '[{"name": "topic"}, {"name": "audience"}]',
            **inline_post_data("steps", [
                {"id": outline.pk, "workflow": workflow.pk, "payload": demo.payload.pk, "output_key": "outline",
                 "position": 2},
                {"id": summary.pk, "workflow": workflow.pk, "payload": demo.summary.pk, "output_key": "summary",
                 "position": 1},
            ], initial=2)}
    response = admin_client.post(reverse("admin:workflows_workflow_change", args=[workflow.pk]), data)
    assert response.status_code == 302
    assert [s.output_key for s in workflow.steps.order_by("position")] == ["summary", "outline"]
    page = admin_client.get(reverse("admin:workflows_workflow_change", args=[workflow.pk])).content.decode()
    assert "no previous step" in page  # the summary step now comes first and reads `previous`


def test_new_inline_block_is_appended_after_the_existing_ones(admin_client, demo):
    payload = demo.summary
    existing = payload.payload_blocks.get()
    extra = make_block("extra", "More.")
    data = {"name": payload.name, "description": "", "endpoint": demo.endpoint.pk, "model": "",
            "structured_retries": 2, "extra_params": "{}", "stop": "", "json_schema": "",
            **inline_post_data("payload_blocks", [
                {"id": existing.pk, "payload": payload.pk, "block": existing.block_id, "role": "user",
                 "position": existing.position},
                {"payload": payload.pk, "block": extra.pk, "role": "assistant", "position": ""},
            ], initial=1)}
    response = admin_client.post(reverse("admin:payloads_payload_change", args=[payload.pk]), data)
    assert response.status_code == 302
    assert [pb.block.name for pb in payload.payload_blocks.order_by("position")] == ["summary-task", "extra"]
