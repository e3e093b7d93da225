"""The Experiments pages: login and the model permissions on every page, button and export; the form
names the field of each of experiment_create's errors and creates nothing; the matrix, its filters
and the export of an experiment driven over real HTTP to the fake LLM; compare; the run page's cell line."""
from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from experiments.models import Cell, Experiment, Variant
from experiments.selectors import results_page
from experiments.services import experiment_cancel
from runs.services import run_start
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment
from tests.experiments.running import drive_to_end
from tests.experiments.test_driver import drive
from tests.factories import make_chain, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)


def an_experiment(base_url: str, rows: int = 3, **fields):  # type: ignore[no-untyped-def]
    workflow, first, second = make_two_releases(base_url)
    return start_experiment(workflow, make_dataset_version(rows), [first, second], **fields)


def text(response) -> str:  # type: ignore[no-untyped-def]
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


def test_every_page_needs_a_login_and_the_permission(client: Client, client_with_perms: Callable[..., Client],
                                                     fake_llm) -> None:
    experiment = an_experiment(fake_llm.base_url)
    pk = experiment.pk
    reads = [reverse("experiments:list"), reverse("experiments:detail", args=[pk]),
             reverse("experiments:results", args=[pk]), f"{reverse('experiments:export', args=[pk])}?format=csv",
             f"{reverse('experiments:compare')}?a={pk}&b={pk}"]
    posts = [reverse("experiments:cancel", args=[pk]), reverse("experiments:retry", args=[pk])]
    new = reverse("experiments:new")
    for url in [*reads, new]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    for url in posts:
        assert client.post(url).status_code == 302, url
    stranger = client_with_perms("runs.view_run", "datasets.view_dataset")
    for url in [*reads, new]:
        assert stranger.get(url).status_code == 403, url
    for url in posts:
        assert stranger.post(url).status_code == 403, url
    reader = client_with_perms("experiments.view_experiment")
    for url in reads:
        assert reader.get(url).status_code == 200, url
    detail = reader.get(reads[1]).content.decode()
    assert 'id="cancel-form"' not in detail and 'id="retry-form"' not in detail  # no buttons without change
    assert reader.get(new).status_code == 403
    assert reader.post(new, {"name": "x"}).status_code == 403
    for url in posts:
        assert reader.post(url).status_code == 403, url
    experiment.refresh_from_db()
    assert experiment.status == "running" and Experiment.objects.count() == 1
    changer = client_with_perms("experiments.view_experiment", "experiments.change_experiment")
    assert changer.post(posts[0]).status_code == 302
    experiment.refresh_from_db()
    assert experiment.status in ("stopping", "cancelled")


def form_data(workflow, version, **changes) -> dict:  # type: ignore[no-untyped-def]
    data = {"name": "briefly or in detail", "workflow": workflow.pk, "dataset": version.dataset_id,
            "version": version.number, "variants": ["current"], "repeats": 1, "concurrency": 2, "budget": "",
            "budget_currency": "", "map_topic": "topic", "value_topic": ""}
    data.update(changes)
    return data


def test_the_form_offers_the_workflows_variants_and_maps_inputs_to_the_same_named_column(user_client, fake_llm):
    workflow, first, second = make_two_releases(fake_llm.base_url)
    version = make_dataset_version(4)
    page = user_client.get(reverse("experiments:new"), {"workflow": workflow.pk, "dataset": version.dataset_id})
    content = page.content.decode()
    assert page.status_code == 200
    assert 'value="current"' in content and f'value="release:{first.pk}"' in content
    assert f'value="release:{second.pk}"' in content
    assert '<option value="topic" selected>column topic</option>' in content
    created = user_client.post(reverse("experiments:new"), form_data(
        workflow, version, variants=["current", f"release:{first.pk}"]))
    assert created.status_code == 302
    experiment = Experiment.objects.get()
    assert created["Location"] == reverse("experiments:detail", args=[experiment.pk])
    assert experiment.mapping == {"topic": {"column": "topic"}} and experiment.cell_count == 8
    assert [v.release_id for v in Variant.objects.filter(experiment=experiment).order_by("position")][1] == first.pk


@pytest.mark.parametrize(("cache_mode", "words"), [
    (None, "As each payload says"), ("use", "Use the cache"), ("off", "No cache"),
])
def test_the_detail_page_says_which_cache_choice_its_cells_run_with(user_client, fake_llm, cache_mode, words):
    experiment = an_experiment(fake_llm.base_url, cache_mode=cache_mode)
    detail = user_client.get(reverse("experiments:detail", args=[experiment.pk])).content.decode()
    assert f'<dt>Response cache</dt><dd data-field="cache-mode">{words}</dd>' in detail
    # The words the new-experiment form offered the choice with.
    form = user_client.get(reverse("experiments:new")).content.decode()
    assert f'<option value="{cache_mode or ""}"' in form and f">{words}</option>" in form


@pytest.mark.parametrize(("column", "changes", "field", "message"), [
    ("topic", {"budget": "a lot"}, "budget", "is not an amount of money"),
    ("topic", {"budget": "1", "budget_currency": "EURO"}, "budget_currency", ""),
    ("topic", {"map_topic": "__value__", "value_topic": "x", "repeats": 0}, "repeats", "Ensure this value is greater"),
    ("topic", {"variants": []}, "variants", "This field is required"),
    ("subject", {"map_topic": ""}, "map_topic", "has no default and no column of that name"),
])
def test_an_error_is_shown_next_to_its_field_and_nothing_is_created(user_client, fake_llm, column, changes, field,
                                                                    message):
    workflow, _, _ = make_two_releases(fake_llm.base_url)
    version = make_dataset_version(2, column=column)
    response = user_client.post(reverse("experiments:new"), form_data(workflow, version, **changes))
    assert response.status_code == 400
    content = response.content.decode()
    errors = content.split(f'id="id_{field}_errors"', 1)
    assert len(errors) == 2 and message in errors[1].split("</ul>", 1)[0], content
    assert Experiment.objects.count() == 0 and Cell.objects.count() == 0


def test_a_label_variant_mapped_to_another_column_starts_and_a_column_not_in_the_version_is_refused(user_client, fake_llm):
    from releases.services import label_set

    workflow, first, _ = make_two_releases(fake_llm.base_url)
    label_set(workflow=workflow, name="production", release=first)
    version = make_dataset_version(2, column="subject")  # no "topic" column
    response = user_client.post(reverse("experiments:new"), form_data(
        workflow, version, variants=["label:production"], map_topic="subject"))
    assert response.status_code == 302  # mapped to another column by name, it starts
    response = user_client.post(reverse("experiments:new"), form_data(
        workflow, version, variants=["label:production"], map_topic="topic"))
    assert response.status_code == 400  # "topic" is not a column of this version: a choice error on the field
    assert 'id="id_map_topic_errors"' in response.content.decode()
    assert Experiment.objects.count() == 1


async def matrix_experiment(fake_llm) -> Experiment:
    """Four cases x two variants, one at a time: case 1's first variant fails, case 2's variants agree."""
    experiment = await sync_to_async(an_experiment)(fake_llm.base_url, rows=4, concurrency=1)
    fake_llm.fail_next({}, {}, {"status": 400, "message": "context length exceeded"}, {},
                       {"content": "the same words"}, {"content": "the same words"})
    return await drive(experiment.pk)


async def test_the_matrix_shows_each_variants_output_and_the_filters_pick_rows(user, fake_llm):
    experiment = await matrix_experiment(fake_llm)
    assert (experiment.succeeded, experiment.failed) == (7, 1)
    client = Client()
    await sync_to_async(client.force_login)(user)
    url = reverse("experiments:detail", args=[experiment.pk])

    def rows(query: str = "") -> list[str]:
        content = client.get(url + query).content.decode()
        return [part.split('"', 1)[0] for part in content.split('<tr data-position="')[1:]]

    assert await sync_to_async(rows)() == ["0", "1", "2", "3"]
    assert await sync_to_async(rows)("?filter=failures") == ["1"]
    assert await sync_to_async(rows)("?filter=disagree") == ["0", "3"]
    page = (await sync_to_async(client.get)(url)).content.decode()
    cell = await Cell.objects.select_related("run").aget(experiment=experiment, position=3, variant__position=1)
    assert f'href="/runs/{cell.run_id}/"' in page and cell.run.output[:40] in page
    assert "the same words" in page and "context length exceeded" in page
    assert '<span data-field="done">8</span> of' in page
    assert "75 %" in page and "100 %" in page  # the first variant succeeded 3 times of 4, the second 4 of 4
    partial = (await sync_to_async(client.get)(reverse("experiments:results", args=[experiment.pk]),
                                               {"filter": "failures"})).content.decode()
    assert partial.startswith('\n<div id="results">') or '<div id="results">' in partial[:200]
    assert partial.count('<tr data-position="') == 1


async def test_the_csv_export_streams_one_line_per_case_with_a_column_per_variant_and_figure(user, fake_llm):
    experiment = await matrix_experiment(fake_llm)
    client = Client()
    await sync_to_async(client.force_login)(user)
    response = await sync_to_async(client.get)(reverse("experiments:export", args=[experiment.pk]), {"format": "csv"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(await sync_to_async(text)(response))))
    header, body = lines[0], lines[1:]
    assert len(body) == 4 and [line[0] for line in body] == ["0", "1", "2", "3"]
    names = [name async for name in Variant.objects.filter(experiment=experiment).order_by("position")
             .values_list("name", flat=True)]
    for name in names:
        assert f"{name}.output" in header and f"{name}.status" in header
    second = body[1]
    assert second[header.index(f"{names[0]}.status")] == "failed" and second[header.index(f"{names[1]}.status")] == "succeeded"
    assert body[2][header.index(f"{names[0]}.output")] == "the same words"
    jsonl = await sync_to_async(client.get)(reverse("experiments:export", args=[experiment.pk]), {"format": "jsonl"})
    assert len((await sync_to_async(text)(jsonl)).splitlines()) == 4
    bad = await sync_to_async(client.get)(reverse("experiments:export", args=[experiment.pk]), {"format": "xlsx"})
    assert bad.status_code == 400


async def test_retry_from_the_page_queues_the_failed_cell_again(user, fake_llm):
    experiment = await matrix_experiment(fake_llm)
    client = Client()
    await sync_to_async(client.force_login)(user)
    detail = (await sync_to_async(client.get)(reverse("experiments:detail", args=[experiment.pk]))).content.decode()
    assert 'id="retry-form"' in detail and 'id="retry-form" hidden' not in detail
    response = await sync_to_async(client.post)(reverse("experiments:retry", args=[experiment.pk]), follow=True)
    assert "1 errored cells queued again." in response.content.decode()
    experiment = await drive(experiment.pk)
    assert (experiment.succeeded, experiment.failed) == (8, 0)


async def test_compare_puts_two_experiments_outputs_side_by_side_by_dataset_row(user, fake_llm):
    first = await matrix_experiment(fake_llm)
    version = await sync_to_async(lambda: first.dataset_version)()
    workflow = await sync_to_async(lambda: first.workflow)()
    release = await sync_to_async(lambda: first.variants.order_by("position").last().release)()
    second = await sync_to_async(start_experiment)(workflow, version, [release], name="again")
    second = await drive(second.pk)
    client = Client()
    await sync_to_async(client.force_login)(user)
    page = (await sync_to_async(client.get)(reverse("experiments:compare"), {"a": first.pk, "b": second.pk})).content.decode()
    assert page.count('<tr data-row-id="') == 4
    # A's first variant against B's only one (A's second release): case 2 (scripted) differs, its own output
    assert "the same words" in page
    b_cell = await Cell.objects.select_related("run").aget(experiment=second, position=0)
    assert b_cell.run.output[:40] in page
    variant_b = await Variant.objects.aget(experiment=first, position=1)
    same = (await sync_to_async(client.get)(reverse("experiments:compare"), {
        "a": first.pk, "b": second.pk, "va": variant_b.pk})).content.decode()
    # The same release on the same cases: only the scripted case differs.
    assert same.count('data-same="false"') == 1 + 2 * 1  # the row, and its two cells
    missing = await sync_to_async(client.get)(reverse("experiments:compare"), {"a": first.pk, "b": 999999})
    assert missing.status_code == 404


async def test_the_run_page_names_the_experiment_cell_and_a_plain_run_page_does_not(user, fake_llm):
    experiment = await matrix_experiment(fake_llm)
    client = Client()
    await sync_to_async(client.force_login)(user)
    cell = await Cell.objects.select_related("variant").aget(experiment=experiment, position=2, variant__position=1)
    page = (await sync_to_async(client.get)(reverse("run-detail", args=[cell.run_id]))).content.decode()
    assert "Cell of experiment" in page
    assert f'href="/experiments/{experiment.pk}/"' in page and f"variant {cell.variant.name}" in page
    assert "case #3" in page and "repeat 1" in page
    plain = await sync_to_async(lambda: run_start(workflow=make_chain(make_endpoint(fake_llm.base_url, name="plain")),
                                                  inputs={"topic": "x"}, user=None))()
    page = (await sync_to_async(client.get)(reverse("run-detail", args=[plain.pk]))).content.decode()
    assert "Cell of experiment" not in page


def test_the_list_shows_progress_and_cancel_stops_a_running_experiment(user_client, fake_llm):
    experiment = an_experiment(fake_llm.base_url, rows=3)
    listing = user_client.get(reverse("experiments:list")).content.decode()
    assert experiment.name in listing and "0/6" in listing and "v1" in listing
    assert user_client.post(reverse("experiments:cancel", args=[experiment.pk])).status_code == 302
    experiment.refresh_from_db()
    assert experiment.status in ("stopping", "cancelled")
    experiment_cancel(experiment=experiment)  # a second cancel changes nothing


def test_the_matrix_sorts_by_a_variants_latency_on_the_page_and_the_api(user_client, api, fake_llm) -> None:  # type: ignore[no-untyped-def]
    workflow, first, second = make_two_releases(fake_llm.base_url)
    experiment = start_experiment(workflow, make_dataset_version(6), [first, second], concurrency=2)
    drive_to_end(experiment.pk)
    variant = experiment.variants.order_by("position").first()
    # Give the first variant's cells known latencies, out of the dataset's order.
    latencies = {0: 30, 1: 500, 2: 10, 3: 200, 4: None, 5: 90}
    for position, latency in latencies.items():
        Cell.objects.filter(experiment=experiment, variant=variant, position=position).update(latency_ms=latency)
    slowest_first = [1, 3, 5, 0, 2, 4]  # cells without a figure last
    rows, more = results_page(experiment, sort=("latency", variant.pk), limit=4)
    assert [row.position for row in rows] == slowest_first[:4] and more
    rows, _ = results_page(experiment, sort=("latency", variant.pk), offset=4, limit=4)
    assert [row.position for row in rows] == slowest_first[4:]
    page = user_client.get(f"/experiments/{experiment.pk}/results/?sort=latency&sort_variant={variant.pk}")
    text = page.content.decode()
    assert [text.index(f"t{p}<") for p in slowest_first[:3]] == sorted(text.index(f"t{p}<") for p in slowest_first[:3])
    answer = api.get(f"/api/experiments/{experiment.pk}/results/?sort=latency:{variant.pk}").json()
    assert [row["position"] for row in answer["results"]] == slowest_first
    assert api.get(f"/api/experiments/{experiment.pk}/results/?sort=latency:999999").status_code == 400
    assert api.get(f"/api/experiments/{experiment.pk}/results/?sort=speed:{variant.pk}").status_code == 400
