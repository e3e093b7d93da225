import pytest
from django.urls import reverse

from blocks.models import Block
from payloads.models import Payload
from runs.models import Run
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

MODELS = [("blocks", "block", Block), ("payloads", "payload", Payload), ("workflows", "workflow", Workflow),
          ("runs", "run", Run)]


@pytest.mark.parametrize(("app", "model", "cls"), MODELS)
def test_changelist_and_change_form_render_for_a_superuser(admin_client, demo, app, model, cls):
    obj = cls.objects.first()
    changelist = admin_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert changelist.status_code == 200
    assert str(obj) in changelist.content.decode() or (model == "run" and obj.workflow_name in changelist.content.decode())
    change = admin_client.get(reverse(f"admin:{app}_{model}_change", args=[obj.pk]))
    assert change.status_code == 200


@pytest.mark.parametrize(("app", "model"), [("blocks", "block"), ("payloads", "payload"), ("workflows", "workflow")])
def test_add_form_renders(admin_client, demo, app, model):
    assert admin_client.get(reverse(f"admin:{app}_{model}_add")).status_code == 200


@pytest.mark.parametrize("query", ["", "?q=outline", "?used=yes", "?used=no"])
def test_block_changelist_search_and_filters_render(admin_client, demo, query):
    assert admin_client.get(reverse("admin:blocks_block_changelist") + query).status_code == 200


def test_run_changelist_filters_and_search_find_the_run(admin_client, demo):
    url = reverse("admin:runs_run_changelist")
    for query in ["?status__exact=succeeded", "?q=article", f"?workflow__id__exact={demo.workflow.pk}"]:
        response = admin_client.get(url + query)
        assert response.status_code == 200
        assert response.context["cl"].result_count == 1
    assert admin_client.get(url + "?status__exact=failed").context["cl"].result_count == 0


def test_run_cannot_be_added_in_the_admin(admin_client, demo):
    assert admin_client.get(reverse("admin:runs_run_add")).status_code == 403
