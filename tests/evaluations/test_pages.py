"""Scores where people decide: marks and reasons in the experiment matrix, each variant's figures in its
column header, regressions against a baseline, re-evaluate and re-score errors from the page, the
form's assertions, the export's outcome and score, the run page's assertion results and a label's pass
rate per day. Experiments are driven over real HTTP to the fake LLM and scored by evaluations.work."""
from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from evaluations.models import Evaluation, Score
from evaluations.selectors import label_pass_rate_days, wilson_interval
from evaluations.services import run_checks_set
from evaluations.work import evaluations_work
from experiments.models import Cell, Experiment, Variant
from experiments.selectors import regression_page
from releases.models import LabelMove
from releases.services import label_set
from runs.engine import execute_run
from runs.models import Run
from runs.services import run_start
from tests.evaluations.test_judges import judge_all
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment
from tests.experiments.test_driver import drive
from tests.experiments.test_pages import form_data, text

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = [{"type": "icontains", "value": "good"}]
# One cell at a time, case by case, variant by variant: case 1 passes only in the first variant (a
# regression of the second against it), case 2 passes in both, case 3 in neither.
OUTPUTS = ["a good answer", "a poor answer", "good too", "also good", "poor", "poor again"]


async def scored_experiment(fake_llm, assertions=GOOD, outputs=OUTPUTS) -> Experiment:  # type: ignore[no-untyped-def]
    workflow, first, second = await sync_to_async(make_two_releases)(fake_llm.base_url)
    version = await sync_to_async(make_dataset_version)(len(outputs) // 2)
    experiment = await sync_to_async(start_experiment)(workflow, version, [first, second], concurrency=1,
                                                       assertions=assertions)
    fake_llm.fail_next(*({"content": output} for output in outputs))
    experiment = await drive(experiment.pk)
    await sync_to_async(evaluations_work)(owner="test")
    return experiment


async def logged_in(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    await sync_to_async(client.force_login)(user)
    return client


def page(client: Client, url: str, query: dict | None = None) -> str:
    response = client.get(url, query or {})
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def row_positions(content: str) -> list[str]:
    return [part.split('"', 1)[0] for part in content.split('<tr data-position="')[1:]]


async def test_each_cell_has_its_mark_with_the_reason_and_each_header_its_figures(user, fake_llm):
    experiment = await scored_experiment(fake_llm)
    client = await logged_in(user)
    content = await sync_to_async(page)(client, reverse("experiments:detail", args=[experiment.pk]))
    assert content.count('<span class="mark" data-outcome="pass"') == 3
    assert content.count('<span class="mark" data-outcome="fail"') == 3
    reason = await Score.objects.filter(evaluation_id=experiment.evaluation_id, outcome="fail").values_list(
        "reason", flat=True).afirst()
    assert reason and f'title="{escape(reason)}"' in content  # on hover
    assert f'<span class="visually-hidden">Reason: {escape(reason)}</span>' in content  # and for a screen reader
    first, second = [v async for v in Variant.objects.filter(experiment=experiment).order_by("position")]
    heads = {v.pk: content.split(f'<th scope="col" data-variant="{v.pk}" class="variant-head">', 1)[1].split("</th>", 1)[0]
             for v in (first, second)}
    low, high = wilson_interval(2, 3)
    assert '<span data-field="pass-rate"' in heads[first.pk] and ">67 %</span>" in heads[first.pk]
    assert f"({round(low * 100)} to {round(high * 100)} %)" in heads[first.pk]
    assert "score 0.67" in heads[first.pk] and ">33 %</span>" in heads[second.pk] and "score 0.33" in heads[second.pk]
    assert 'data-field="p95">p95 ' in heads[first.pk] and 'data-field="cost"' in heads[first.pk]
    assert 'id="chart-pass-rate"' in content and "chart-whisker" in content  # the chart, with its intervals
    assert "Evaluation 1 (current)" in content and "6/6 scored" in content


async def test_a_baseline_marks_regressions_and_the_filter_keeps_only_their_rows(user, fake_llm):
    experiment = await scored_experiment(fake_llm)
    client = await logged_in(user)
    first, second = [v async for v in Variant.objects.filter(experiment=experiment).order_by("position")]
    url = reverse("experiments:detail", args=[experiment.pk])
    plain = await sync_to_async(page)(client, url)
    assert 'data-regression="true"' not in plain and 'data-filter="regressions"' not in plain
    against_first = await sync_to_async(page)(client, url, {"baseline": first.pk})
    assert against_first.count('data-regression="true"') == 1
    regressed = against_first.split('<tr data-position="0"', 1)[1].split("</tr>", 1)[0]
    assert 'data-regression="true"' in regressed and ">regression</span>" in regressed
    assert f'href="?baseline={first.pk}&amp;filter=regressions"' in against_first
    only = await sync_to_async(page)(client, url, {"baseline": first.pk, "filter": "regressions"})
    assert row_positions(only) == ["0"]
    # Against the second variant the first fails only where the second fails too: nothing regressed.
    none = await sync_to_async(page)(client, url, {"baseline": second.pk, "filter": "regressions"})
    assert row_positions(none) == [] and f"No regression against {second.name}." in none
    rows, more = await sync_to_async(regression_page)(experiment, evaluation_id=experiment.evaluation_id,
                                                      baseline_id=first.pk, limit=1)
    assert [(r.position, r.repeat) for r in rows] == [(0, 0)] and not more
    assert set(rows[0].cells) == {first.pk, second.pk}  # the whole row, not only the regressed cell


async def test_re_evaluate_and_re_score_errors_need_the_change_permission_and_do_what_they_say(
        user, fake_llm, client_with_perms: Callable[..., Client]):
    # A cost check cannot be made without a price: every subject is an error.
    experiment = await scored_experiment(fake_llm, assertions=[{"type": "cost", "threshold": 1}])
    evaluation = await Evaluation.objects.aget(pk=experiment.evaluation_id)
    assert evaluation.errors == 6
    reevaluate = reverse("experiments:reevaluate", args=[experiment.pk])
    rescore = reverse("experiments:rescore-errors", args=[experiment.pk])
    detail = reverse("experiments:detail", args=[experiment.pk])
    reader = await sync_to_async(client_with_perms)("experiments.view_experiment", "evaluations.view_evaluation")
    content = await sync_to_async(page)(reader, detail)
    assert 'id="reevaluate-form"' not in content and 'id="rescore-form"' not in content
    assert (await sync_to_async(reader.post)(rescore)).status_code == 403
    assert (await sync_to_async(reader.post)(reevaluate, {"assertions": "[]"})).status_code == 403
    assert await Score.objects.filter(evaluation=evaluation, outcome="error").acount() == 6

    changer = await sync_to_async(client_with_perms)("experiments.view_experiment", "experiments.change_experiment")
    content = await sync_to_async(page)(changer, detail)
    assert 'id="rescore-form"' in content and 'id="reevaluate-form"' in content
    response = await sync_to_async(changer.post)(rescore, follow=True)
    assert "6 scores in error are scored again." in response.content.decode()
    assert await Score.objects.filter(evaluation=evaluation, outcome="pending").acount() == 6

    bad = await sync_to_async(changer.post)(reevaluate, {"assertions": '[{"type": "regexx"}]'}, follow=True)
    assert "assertions[0].type" in bad.content.decode()
    assert await Evaluation.objects.filter(scope=f"experiment:{experiment.pk}").acount() == 1
    response = await sync_to_async(changer.post)(reevaluate, {"assertions": '[{"type": "icontains", "value": "good"}]'},
                                                 follow=True)
    assert "Evaluation 2 started: 6 stored outputs" in response.content.decode()
    await sync_to_async(evaluations_work)(owner="test")
    experiment = await Experiment.objects.aget(pk=experiment.pk)
    current = await Evaluation.objects.aget(pk=experiment.evaluation_id)
    assert (current.number, current.passed, current.failed) == (2, 3, 3)
    content = await sync_to_async(page)(changer, detail)
    assert content.count('data-outcome="pass"') >= 3 and f'href="?evaluation={evaluation.pk}"' in content
    earlier = await sync_to_async(page)(changer, detail, {"evaluation": evaluation.pk})
    assert "Evaluation 1" in earlier and ">earlier</span>" in earlier
    assert earlier.count('<span class="mark" data-outcome="error"') == 6  # its marks, not the current ones


def test_the_forms_assertions_are_checked_naming_the_assertion_and_nothing_is_created(user_client, fake_llm):
    workflow, _, _ = make_two_releases(fake_llm.base_url)
    version = make_dataset_version(2)
    url = reverse("experiments:new")
    for given, message in [('[{"type": "contains", "value": "x"}, {"type": "regex", "value": "(?=x)"}]',
                            "assertions[1].value: "),
                           ("{not json", "Not JSON"), ('{"type": "equals"}', "Give a JSON list of assertions")]:
        response = user_client.post(url, form_data(workflow, version, assertions=given))
        assert response.status_code == 400
        errors = response.content.decode().split('id="id_assertions_errors"', 1)
        assert len(errors) == 2 and message in errors[1].split("</ul>", 1)[0], given
        assert given.split(",")[0].replace('"', "&quot;") in response.content.decode()  # what was typed is kept
    assert not Experiment.objects.exists() and not Evaluation.objects.exists() and not Cell.objects.exists()
    assert user_client.post(url, form_data(workflow, version, assertions=str(GOOD).replace("'", '"'))).status_code == 302
    assert Experiment.objects.get().assertions == GOOD and Evaluation.objects.count() == 1


async def test_the_export_gives_each_variants_outcome_and_score(user, fake_llm):
    experiment = await scored_experiment(fake_llm)
    client = await logged_in(user)
    url = reverse("experiments:export", args=[experiment.pk])
    lines = list(csv.reader(io.StringIO(await sync_to_async(text)(await sync_to_async(client.get)(url, {"format": "csv"})))))
    header, body = lines[0], lines[1:]
    names = [n async for n in Variant.objects.filter(experiment=experiment).order_by("position").values_list("name", flat=True)]
    outcomes = [[line[header.index(f"{name}.outcome")] for name in names] for line in body]
    assert outcomes == [["pass", "fail"], ["pass", "pass"], ["fail", "fail"]]
    assert body[0][header.index(f"{names[0]}.score")] == "1.0" and f"{names[0]}.output" in header
    jsonl = (await sync_to_async(text)(await sync_to_async(client.get)(url, {"format": "jsonl"}))).splitlines()
    assert '"outcome": "fail", "score": 0.0' in jsonl[0] and len(jsonl) == 3


async def test_the_run_page_shows_each_assertions_result_with_its_judges_run(user, fake_llm):
    workflow, first, _ = await sync_to_async(make_two_releases)(fake_llm.base_url)
    endpoint = await sync_to_async(lambda: workflow.steps.first().payload.endpoint.name)()
    await sync_to_async(call_command)("seed_judges", endpoint=endpoint)
    version = await sync_to_async(make_dataset_version)(1)
    experiment = await sync_to_async(start_experiment)(workflow, version, [first], assertions=[
        {"type": "llm-rubric", "value": "Answers about {{ topic }}"}, {"type": "contains", "value": "zzz-never"}])
    experiment = await drive(experiment.pk)
    await judge_all()
    cell = await Cell.objects.aget(experiment=experiment)
    score = await Score.objects.aget(run_id=cell.run_id)
    client = await logged_in(user)
    content = await sync_to_async(page)(client, reverse("run-detail", args=[cell.run_id]))
    section = content.split('id="assertion-results"', 1)[1].split("</section>", 1)[0]
    assert "llm-rubric" in section and "contains" in section and 'data-outcome="fail"' in section
    assert escape(score.results[1]["reason"]) in section
    assert f'href="/runs/{score.results[0]["judge_run_id"]}/" data-field="judge-run"' in section
    # The judge's own run was scored by nothing: no section at all.
    judge_page = await sync_to_async(page)(client, reverse("run-detail", args=[score.results[0]["judge_run_id"]]))
    assert 'id="assertion-results"' not in judge_page


async def test_a_labels_pass_rate_per_day_counts_the_runs_of_the_release_it_pointed_at(user, fake_llm):
    workflow, first, second = await sync_to_async(make_two_releases)(fake_llm.base_url)
    await sync_to_async(run_checks_set)(workflow=workflow, assertions=GOOD)
    now = timezone.now()

    async def run(content: str, label: str = "") -> Run:
        fake_llm.fail_next({"content": content})
        started = await sync_to_async(run_start)(workflow=workflow, inputs={"topic": "t"}, user=None, label=label)
        await execute_run(started.pk)
        return started

    await sync_to_async(label_set)(workflow=workflow, name="production", release=first)
    await LabelMove.objects.filter(label="production").aupdate(moved_at=now - datetime.timedelta(days=2))
    yesterday = [await run("good", "production"), await run("poor", "production")]
    await Run.objects.filter(pk__in=[r.pk for r in yesterday]).aupdate(created_at=now - datetime.timedelta(days=1))
    before_the_move = await run("good")  # the tree as it stands is the second release, not yet labelled
    assert before_the_move.release_id == second.pk
    await sync_to_async(label_set)(workflow=workflow, name="production", release=second)
    await run("poor", "production")
    await sync_to_async(evaluations_work)(owner="test")
    assert await Score.objects.filter(outcome__in=("pass", "fail")).acount() == 4

    days = await sync_to_async(label_pass_rate_days)(workflow.pk, "production", days=3)
    assert [(d.passed, d.failed) for d in days] == [(0, 0), (1, 1), (0, 1)]
    assert days[1].pass_rate == 0.5 and days[1].interval == wilson_interval(1, 2) and days[0].pass_rate is None
    client = await logged_in(user)
    content = await sync_to_async(page)(client, reverse("run-stats"), {"workflow": workflow.pk})
    assert 'id="chart-label-pass-rate-production"' in content and "Pass rate of “production” per day" in content


async def test_the_experiment_page_shows_outcomes_by_metric(user, fake_llm):  # type: ignore[no-untyped-def]
    experiment = await scored_experiment(fake_llm, assertions=[
        {"type": "icontains", "value": "good", "metric": "tone"}, {"type": "word-count", "value": {"min": 1}}])
    content = await sync_to_async(page)(await logged_in(user), f"/experiments/{experiment.pk}/")
    table = content.split('id="metrics-table"', 1)[1].split("</table>", 1)[0]
    # "good" in 3 of the 6 outputs; the unnamed word count has no metric row.
    assert 'data-metric="tone"' in table and "50%" in table.replace(" ", "").replace("&nbsp;", "")
    assert table.count("data-metric=") == 1
