import pytest

from blocks.models import Block
from tests.factories import make_block

pytestmark = pytest.mark.django_db


def test_pages_need_a_login(client):
    for url in ["/blocks/", "/blocks/new/", "/payloads/", "/payloads/new/", "/workflows/", "/workflows/new/"]:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_list_shows_each_block_with_the_variables_it_reads(user_client, chain):
    page = user_client.get("/blocks/").content.decode()
    assert "outline-prompt" in page and "summary-prompt" in page
    assert '<code class="chip">audience</code>' in page and '<code class="chip">previous</code>' in page


def test_search_finds_a_block_by_variable_and_htmx_gets_only_the_list(user_client, chain):
    response = user_client.get("/blocks/", {"q": "audience"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="block-list")
    html = response.content.decode()
    assert html.lstrip().startswith('<ul class="item-list" id="block-list"')
    assert "outline-prompt" in html and "summary-prompt" not in html


def test_create_a_block_saves_through_the_service_and_redirects_to_its_editor(user_client):
    response = user_client.post("/blocks/new/", {"name": "greet", "description": "", "content": "Hi {{ name }}"})
    block = Block.objects.get(name="greet")
    assert response.status_code == 302 and response["Location"] == f"/blocks/{block.pk}/"
    assert block.variables == ["name"]


def test_a_template_that_does_not_parse_is_shown_next_to_the_field(user_client):
    response = user_client.post("/blocks/new/", {"name": "broken", "content": "Hi {{ name"})
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="id_content_errors"' in html and "does not parse" in html and "line 1" in html
    assert not Block.objects.filter(name="broken").exists()


def test_a_duplicate_name_is_shown_next_to_the_name(user_client, chain):
    response = user_client.post("/blocks/new/", {"name": "house-style", "content": "x"})
    assert response.status_code == 400
    assert 'id="id_name_errors"' in response.content.decode()


def test_htmx_edit_returns_the_editor_and_the_refreshed_list(user_client, chain):
    block = chain["blocks"][0]
    response = user_client.post(f"/blocks/{block.pk}/", {"name": "outline-v2", "content": "Outline {{ subject }}"},
                                 HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and response["HX-Push-Url"] == f"/blocks/{block.pk}/"
    assert html.lstrip().startswith('<section class="card" id="editor"')
    assert 'id="block-list" hx-swap-oob="true"' in html and '<code class="chip">subject</code>' in html
    block.refresh_from_db()
    assert block.name == "outline-v2"


def test_htmx_edit_with_an_error_keeps_the_stored_block(user_client, chain):
    block = chain["blocks"][0]
    response = user_client.post(f"/blocks/{block.pk}/", {"name": "", "content": "ok"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'id="id_name_errors"' in response.content.decode()
    block.refresh_from_db()
    assert block.name == "outline-prompt"


def test_live_check_names_the_line_of_a_parse_error(user_client):
    response = user_client.post("/blocks/check/", {"content": "one\ntwo\nHi {{ name }"})
    assert 'data-check="error"' in response.content.decode() and "line 3" in response.content.decode()
    ok = user_client.post("/blocks/check/", {"content": "{{ b }} and {{ a }}"}).content.decode()
    assert 'data-check="ok"' in ok and ok.index(">a<") < ok.index(">b<")


def test_editor_shows_the_payloads_and_workflows_that_use_the_block(user_client, chain):
    html = user_client.get(f"/blocks/{chain['blocks'][1].pk}/").content.decode()
    used_by = html[html.index('id="used-by"'):]
    assert ">outline</a>" in used_by and ">article</a>" in used_by and ">summary</a>" not in used_by
    unused = make_block("unused", "x")
    assert "No payload uses this block yet." in user_client.get(f"/blocks/{unused.pk}/").content.decode()


def test_a_viewer_sees_blocks_but_cannot_create_or_change_them(client_with_perms, chain):
    viewer = client_with_perms("blocks.view_block")
    assert viewer.get("/blocks/").status_code == 200
    assert "fieldset disabled" in viewer.get(f"/blocks/{chain['blocks'][0].pk}/").content.decode()
    assert viewer.post("/blocks/new/", {"name": "x", "content": "y"}).status_code == 403
    assert viewer.post(f"/blocks/{chain['blocks'][0].pk}/", {"name": "x", "content": "y"}).status_code == 403
    assert not Block.objects.filter(name="x").exists()


def test_without_the_view_permission_the_page_is_forbidden(client_with_perms):
    assert client_with_perms().get("/blocks/").status_code == 403


def test_changes_without_the_csrf_token_are_refused(csrf_client, chain):
    response = csrf_client.post("/blocks/new/", {"name": "x", "content": "y"})
    assert response.status_code == 403 and not Block.objects.filter(name="x").exists()
    page = csrf_client.get("/blocks/new/")
    token = page.context["csrf_token"]
    assert csrf_client.post("/blocks/new/", {"name": "x", "content": "y", "csrfmiddlewaretoken": str(token)}
                            ).status_code == 302
