"""The layout shared by every page, through Django's test client: grouped navigation, breadcrumbs, empty states
that say what to do next, vendored icons and the charts' value axis. The browser checks are in
tests/browser/test_layout_browser.py."""
import re

import pytest
from django.urls import NoReverseMatch, reverse

from runs.charts import axis_step, bar_chart
from runs.templatetags.ui import NAV_GROUPS, NavItem, nav_groups, nav_links
from tests.factories import make_block
from tests.runs_pages.conftest import client_with, finished_run


def nav_of(page: str) -> str:
    return page[page.index('<header class="topbar"'):page.index("</header>")]


def crumbs_of(page: str) -> list[str]:
    """The breadcrumb trail as 'label' or 'label -> href' items."""
    trail = page[page.index('aria-label="Breadcrumb"'):]
    trail = trail[:trail.index("</nav>")]
    items = re.findall(r"<li>(.*?)</li>", trail)
    return [re.sub(r'<a href="([^"]*)">(.*)</a>', r"\2 -> \1", re.sub(r"</?span[^>]*>", "", item)) for item in items]


@pytest.mark.django_db
def test_the_navigation_is_grouped_by_what_people_do_with_the_current_group_marked(user_client, article):
    nav = nav_of(user_client.get("/runs/").content.decode())
    groups = re.findall(r'<li class="navgroup( is-current)?" data-group="(\w+)">', nav)
    assert [key for _, key in groups][:2] == ["build", "run"] and "settings" in [key for _, key in groups]
    assert [key for current, key in groups if current] == ["run"]
    build = nav[nav.index('data-group="build"'):nav.index('data-group="run"')]
    assert [label for label in re.findall(r"<span>([^<]+)</span></a>", build)] == ["Blocks", "Payloads", "Workflows"]
    assert '<a href="/runs/" aria-current="page">' in nav
    # Admin and API docs live in the user menu, beside Log out.
    user_menu = nav[nav.index('data-group="user"'):]
    assert 'href="/admin/"' in user_menu and 'href="/api/docs/"' in user_menu and "Log out" in user_menu
    # On a builder page the Build group is the current one.
    nav = nav_of(user_client.get(f"/workflows/{article.pk}/").content.decode())
    assert re.findall(r'<li class="navgroup is-current" data-group="(\w+)">', nav) == ["build"]
    assert '<a href="/workflows/" aria-current="page">' in nav


def test_links_to_pages_that_do_not_exist_yet_are_skipped_and_empty_groups_left_out():
    links = nav_links(None, (NavItem("no-such-page", "Later", "play"), NavItem("run-list", "Runs", "list-checks")))
    assert [link["label"] for link in links] == ["Runs"]
    groups = nav_groups(None)
    assert all(group["links"] for group in groups)
    for group in NAV_GROUPS:
        exists = []
        for item in group.items:
            try:
                exists.append(bool(reverse(item.url_name)))
            except NoReverseMatch:
                exists.append(False)
        assert (group.key in [g["key"] for g in groups]) == any(exists)


@pytest.mark.django_db
def test_detail_pages_have_breadcrumbs(user_client, article):
    run = finished_run(article, {"topic": "tides"}, ["a", "b", "c"])
    assert crumbs_of(user_client.get(f"/workflows/{article.pk}/").content.decode()) == [
        "Build", "Workflows -> /workflows/", "Article"]
    assert crumbs_of(user_client.get(f"/runs/{run.pk}/").content.decode()) == [
        "Run", "Runs -> /runs/", f"Run #{run.pk}"]
    assert crumbs_of(user_client.get(f"/runs/{run.pk}/replay/").content.decode()) == [
        "Run", "Runs -> /runs/", f"Run #{run.pk} -> /runs/{run.pk}/", "Replay"]
    payload = article.steps.first().payload
    assert crumbs_of(user_client.get(f"/payloads/{payload.pk}/").content.decode()) == [
        "Build", "Payloads -> /payloads/", payload.name]
    assert crumbs_of(user_client.get(f"/run/{article.pk}/").content.decode()) == [
        "Run", "Run a workflow -> /run/", "Article"]
    assert 'aria-current="page">Statistics<' in user_client.get("/runs/stats/").content.decode()


@pytest.mark.django_db
def test_an_empty_runs_list_offers_to_run_the_first_workflow(user_client, article):
    page = user_client.get("/runs/").content.decode()
    assert f'No runs yet: <a href="/run/{article.pk}/">run the Article workflow</a>' in page
    filtered = user_client.get("/runs/?status=failed").content.decode()
    assert "No runs match these filters" in filtered and "run the Article workflow" not in filtered


@pytest.mark.django_db
def test_empty_lists_say_what_to_create_next(user_client):
    runs = user_client.get("/runs/").content.decode()
    assert 'No runs yet: <a href="/workflows/new/">create a workflow</a>' in runs
    assert 'No blocks yet: <a href="/blocks/new/">create one</a>' in user_client.get("/blocks/").content.decode()
    assert 'No payloads yet: <a href="/payloads/new/">create one</a>' in user_client.get("/payloads/").content.decode()
    assert 'No workflows yet: <a href="/workflows/new/">create one</a>' in user_client.get("/workflows/").content.decode()
    assert 'No workflows yet: <a href="/workflows/new/">create one</a>' in user_client.get("/run/").content.decode()
    # Someone who may not create blocks is not sent to a form they cannot use.
    viewer = client_with("blocks.view_block").get("/blocks/").content.decode()
    assert "No blocks yet.</li>" in viewer and '<a href="/blocks/new/">create one' not in viewer


@pytest.mark.django_db
def test_a_block_search_with_no_match_says_so(user_client):
    make_block("greeting", "Hello {{ name }}")
    page = user_client.get("/blocks/?q=zebra", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="block-list").content.decode()
    assert "No blocks match “zebra”." in page and "create one" not in page


@pytest.mark.django_db
def test_icons_are_inlined_from_the_vendored_set_and_hidden_from_screen_readers(user_client, article):
    page = user_client.get(f"/workflows/{article.pk}/").content.decode()
    icons = re.findall(r"<svg class=\"icon\"[^>]*>", page)
    assert len(icons) >= 8  # every nav group, the user menu, Run and Export
    assert all('aria-hidden="true"' in tag and 'focusable="false"' in tag for tag in icons)
    assert re.search(r'id="run-workflow"[^>]*><svg class="icon"', page)


def test_the_value_axis_has_round_ticks_and_a_unit():
    assert [axis_step(h) for h in (2000, 95, 7, 130_000)] == [500, 25, 2, 50_000]
    chart = bar_chart(chart_id="c", title="Latency", series=["latency"], categories=["a", "b"],
                      values=[(1500,), (2000,)], fmt=str, unit="ms")
    assert chart.unit == "ms"
    assert [tick.text for tick in chart.ticks] == ["0", "500", "1,000", "1,500", "2,000"]
    assert chart.ticks[0].y == chart.baseline and chart.bars[1].rects[0].y == chart.ticks[-1].y


@pytest.mark.django_db
def test_charts_draw_gridlines_and_label_the_axis_with_its_unit(user_client, article):
    run = finished_run(article, {"topic": "tides"}, ["a", "b", "c"], latencies=[1500, 300, 2000])
    page = user_client.get(f"/runs/{run.pk}/charts/").content.decode()
    latency = page[page.index('id="chart-step-latency"'):page.index('id="chart-step-tokens"')]
    assert '<text class="chart-unit"' in latency and ">ms</text>" in latency
    assert latency.count('class="chart-grid"') == 4 and ">2,000</text>" in latency
    tokens = page[page.index('id="chart-step-tokens"'):]
    assert ">tokens</text>" in tokens
