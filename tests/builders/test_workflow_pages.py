from decimal import Decimal

import pytest

from workflows.models import Workflow

pytestmark = pytest.mark.django_db


def _form(chain, **overrides):
    outline, summary = chain["payloads"]
    data = {"name": "essay", "description": "", "workflow_id": "",
            "input_name": ["topic", "audience"], "input_default": ["", "everyone"], "input_description": ["", ""],
            "step_payload": [str(outline.pk), str(summary.pk)], "step_output": ["outline", "summary"]}
    data.update(overrides)
    return data


def test_list_shows_status_and_links_to_run_and_export(user_client, chain):
    html = user_client.get("/workflows/").content.decode()
    workflow = chain["workflow"]
    assert "ready" in html and f'href="/run/{workflow.pk}/"' in html and f"/workflows/{workflow.pk}/export/" in html


def test_builder_run_button_opens_the_run_form(user_client, chain):
    workflow = chain["workflow"]
    html = user_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert f'id="run-workflow" href="/run/{workflow.pk}/"' in html
    assert user_client.get(f"/run/{workflow.pk}/").status_code == 200


def test_create_a_workflow_with_inputs_and_ordered_steps(user_client, chain):
    response = user_client.post("/workflows/new/", _form(chain))
    workflow = Workflow.objects.get(name="essay")
    assert response.status_code == 302 and response["Location"] == f"/workflows/{workflow.pk}/"
    assert workflow.inputs == [{"name": "topic"}, {"name": "audience", "default": "everyone"}]
    assert [(s.output_key, s.payload.name) for s in workflow.steps.all()] == [("outline", "outline"),
                                                                               ("summary", "summary")]


def test_a_bad_output_name_is_shown_at_its_step_and_nothing_is_saved(user_client, chain):
    response = user_client.post("/workflows/new/", _form(chain, step_output=["outline", "2bad"]))
    html = response.content.decode()
    assert response.status_code == 400
    step_two = html[html.index('id="step-problems-2"'):]
    assert "Output name: &#x27;2bad&#x27; is not a valid variable name" in step_two.split("</ul>")[0]
    assert not Workflow.objects.filter(name="essay").exists()


def test_a_bad_input_name_is_shown_next_to_the_inputs(user_client, chain):
    response = user_client.post("/workflows/new/", _form(chain, input_name=["topic", "in puts"]))
    html = response.content.decode()
    assert response.status_code == 400
    assert "is not a valid variable name" in html.split('id="inputs-errors"')[1].split("</ul>")[0]


def test_check_puts_each_problem_at_its_step_and_changes_nothing(user_client, chain):
    workflow = chain["workflow"]
    data = _form(chain, workflow_id=str(workflow.pk), input_name=["topic"], input_default=[""],
                 input_description=[""])
    html = user_client.post("/workflows/check/", data).content.decode()
    assert 'data-ready="false"' in html
    step_one = html.split('id="step-problems-1"')[1].split("</ul>")[0]
    step_two = html.split('id="step-problems-2"')[1].split("</ul>")[0]
    assert "&#x27;audience&#x27; is neither a workflow input" in step_one and "<li>" not in step_two
    assert '<li class="flow-read flow-missing">' in html  # the diagram marks the unprovided variable
    workflow.refresh_from_db()
    assert workflow.input_names == ["topic", "audience"]  # the check was rolled back


def test_check_of_a_workflow_without_problems_draws_the_chain(user_client, chain):
    html = user_client.post("/workflows/check/", _form(chain)).content.decode()
    assert 'data-ready="true"' in html
    assert html.count('class="flow-node"') == 2 and "from step <span class=\"mono\">outline</span>" in html
    assert not Workflow.objects.filter(name__startswith="check-").exists()


def test_check_reports_previous_in_the_first_step(user_client, chain):
    outline, summary = chain["payloads"]
    html = user_client.post("/workflows/check/", _form(chain, step_payload=[str(summary.pk), str(outline.pk)],
                                                       step_output=["summary", "outline"])).content.decode()
    assert "first step, which has no previous step" in html.split('id="step-problems-1"')[1].split("</ul>")[0]


def test_edit_replaces_the_steps_in_page_order(user_client, chain):
    workflow = chain["workflow"]
    outline, _summary = chain["payloads"]
    data = _form(chain, name="article", step_payload=[str(outline.pk)], step_output=["only"])
    assert user_client.post(f"/workflows/{workflow.pk}/", data).status_code == 302
    assert [s.output_key for s in workflow.steps.all()] == ["only"]


def test_a_viewer_cannot_change_workflows(client_with_perms, chain):
    viewer = client_with_perms("workflows.view_workflow")
    workflow = chain["workflow"]
    assert viewer.get(f"/workflows/{workflow.pk}/").status_code == 200
    assert viewer.post(f"/workflows/{workflow.pk}/", _form(chain)).status_code == 403
    assert viewer.post("/workflows/new/", _form(chain)).status_code == 403
    assert viewer.post("/workflows/import/", {}).status_code == 403


def test_workflow_changes_need_the_csrf_token(csrf_client, chain):
    assert csrf_client.post("/workflows/new/", _form(chain)).status_code == 403
    assert csrf_client.post("/workflows/import/", {}).status_code == 403
    assert not Workflow.objects.filter(name="essay").exists()


def test_the_builder_sets_the_default_budget_of_the_workflows_runs(user_client, chain):
    response = user_client.post("/workflows/new/", _form(chain, budget="1.5", budget_currency="eur"))
    assert response.status_code == 302
    workflow = Workflow.objects.get(name="essay")
    assert (workflow.budget, workflow.budget_currency) == (Decimal("1.5"), "EUR")
    page = user_client.get(f"/workflows/{workflow.pk}/").content.decode()
    assert 'name="budget" value="1.500000"' in page and 'name="budget_currency" value="EUR"' in page
    assert user_client.post(f"/workflows/{workflow.pk}/", _form(chain, budget="", budget_currency="EUR")).status_code == 302
    workflow.refresh_from_db()
    assert workflow.budget is None
    refused = user_client.post(f"/workflows/{workflow.pk}/", _form(chain, budget="-1"))
    assert refused.status_code == 400 and 'id="id_budget_errors"' in refused.content.decode()
