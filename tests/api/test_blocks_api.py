import pytest

from blocks.models import Block
from tests.factories import make_payload, make_workflow

pytestmark = pytest.mark.django_db


def test_create_block_returns_its_variables(api):
    response = api.post("/api/blocks/", {"name": "outline-task", "content": "About {{ topic }} for {{ reader }}."},
                        format="json")
    assert response.status_code == 201, response.data
    assert response.data["name"] == "outline-task"
    assert response.data["variables"] == ["reader", "topic"]
    assert response.data["used_by"] == {"payloads": [], "workflows": []}
    assert Block.objects.get(name="outline-task").content == "About {{ topic }} for {{ reader }}."


def test_block_detail_lists_the_payloads_and_workflows_that_use_it(api, outline_payload, topic_block):
    workflow = make_workflow("article", [("outline", outline_payload)])
    response = api.get(f"/api/blocks/{topic_block.pk}/")
    assert response.status_code == 200
    assert response.data["used_by"] == {
        "payloads": [{"id": outline_payload.pk, "name": "outline"}],
        "workflows": [{"id": workflow.pk, "name": "article"}],
    }


def test_template_that_does_not_parse_is_refused_with_the_parser_line(api):
    response = api.post("/api/blocks/", {"name": "broken", "content": "ok\n{% if x %}never closed"}, format="json")
    assert response.status_code == 400
    assert "content" in response.data
    assert "line 2" in str(response.data["content"])
    assert not Block.objects.filter(name="broken").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "x"}, "name"),
        ({"name": "n"}, "content"),
        ({"name": ["not", "a", "string"], "content": "x"}, "name"),
        ({"name": "n" * 101, "content": "x"}, "name"),
        ({"name": "n", "content": "x", "colour": "red"}, "colour"),
        ({"name": "n", "content": {"a": 1}}, "content"),
        ({"name": 42, "content": "x"}, "name"),
        ({"name": "n", "content": True}, "content"),
    ],
)
def test_bad_block_input_names_the_field_and_changes_nothing(api, body, field):
    response = api.post("/api/blocks/", body, format="json")
    assert response.status_code == 400
    assert field in response.data
    assert Block.objects.count() == 0


def test_duplicate_block_name_is_refused(api, topic_block):
    response = api.post("/api/blocks/", {"name": topic_block.name, "content": "other"}, format="json")
    assert response.status_code == 400
    assert "name" in response.data
    assert Block.objects.count() == 1


def test_renaming_a_block_in_use_keeps_its_payloads_working(api, outline_payload, topic_block):
    response = api.patch(f"/api/blocks/{topic_block.pk}/", {"name": "outline-task-v2"}, format="json")
    assert response.status_code == 200, response.data
    assert response.data["name"] == "outline-task-v2"
    assert response.data["used_by"]["payloads"] == [{"id": outline_payload.pk, "name": "outline"}]
    assert [pb.block.name for pb in outline_payload.payload_blocks.all()] == ["be-brief", "outline-task-v2"]


def test_update_replaces_content_and_rederives_variables(api, topic_block):
    response = api.put(f"/api/blocks/{topic_block.pk}/",
                       {"name": topic_block.name, "content": "{{ a }} and {{ b }}", "description": "two"},
                       format="json")
    assert response.status_code == 200
    assert response.data["variables"] == ["a", "b"]
    topic_block.refresh_from_db()
    assert topic_block.description == "two"


def test_update_with_bad_template_changes_nothing(api, topic_block):
    response = api.patch(f"/api/blocks/{topic_block.pk}/", {"content": "{{ unclosed"}, format="json")
    assert response.status_code == 400
    assert "content" in response.data
    topic_block.refresh_from_db()
    assert topic_block.content == "Write a short outline about {{ topic }}."


def test_deleting_a_block_in_use_is_a_conflict_naming_its_users(api, outline_payload, topic_block):
    response = api.delete(f"/api/blocks/{topic_block.pk}/")
    assert response.status_code == 409
    assert "outline" in response.data["detail"]
    assert Block.objects.filter(pk=topic_block.pk).exists()


def test_deleting_an_unused_block_works(api, topic_block):
    assert api.delete(f"/api/blocks/{topic_block.pk}/").status_code == 204
    assert not Block.objects.exists()


def test_block_list_filters_searches_orders_and_paginates(api, endpoint, topic_block, system_block):
    make_payload("uses-topic", endpoint, [("user", topic_block)])
    assert [b["name"] for b in api.get("/api/blocks/?used=true").data["results"]] == ["outline-task"]
    assert [b["name"] for b in api.get("/api/blocks/?used=false").data["results"]] == ["be-brief"]
    assert [b["name"] for b in api.get("/api/blocks/?name=OUTLINE").data["results"]] == ["outline-task"]
    assert [b["name"] for b in api.get("/api/blocks/?search=brief").data["results"]] == ["be-brief"]
    assert [b["name"] for b in api.get("/api/blocks/?ordering=-name").data["results"]] == ["outline-task", "be-brief"]
    page = api.get("/api/blocks/?page=1").data
    assert (page["count"], page["next"], page["previous"]) == (2, None, None)
    assert api.get("/api/blocks/?page=99").status_code == 404


def test_unknown_block_is_404(api):
    assert api.get("/api/blocks/999/").status_code == 404
