"""Assertions on an experiment: succeeded cells are scored as they finish, per-variant pass rates with
their interval, re-evaluation of stored outputs without running anything, errors re-scored alone."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from evaluations.models import Evaluation, Score
from evaluations.selectors import wilson_interval
from evaluations.services import evaluation_rescore_errors
from evaluations.work import evaluations_work
from experiments.models import Cell, Experiment
from experiments.selectors import cell_marks, variant_scores
from experiments.services import experiment_reevaluate
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment
from tests.experiments.test_driver import drive

pytestmark = pytest.mark.django_db(transaction=True)


async def test_cells_are_scored_and_a_reevaluation_calls_no_llm(fake_llm):
    workflow, first, second = await sync_to_async(make_two_releases)(fake_llm.base_url)
    version = await sync_to_async(make_dataset_version)(6)
    # The fake server echoes words of the prompt: release A's prompt says "briefly", B's "detail".
    experiment = await sync_to_async(start_experiment)(workflow, version, [first, second], concurrency=4, assertions=[
        {"type": "icontains", "value": "briefly"}, {"type": "word-count", "value": {"min": 1}, "metric": "length"}])
    experiment = await drive(experiment.pk)
    assert experiment.succeeded == 12
    assert await sync_to_async(evaluations_work)(owner="test") == 1
    evaluation = await Evaluation.objects.aget(pk=experiment.evaluation_id)
    assert evaluation.status == "done" and evaluation.total == evaluation.scored == 12
    scores = await sync_to_async(variant_scores)(experiment)
    variants = [v async for v in experiment.variants.order_by("position")]
    outputs = {c.run_id: c async for c in Cell.objects.filter(experiment=experiment).select_related("run")}
    expected_pass = {run_id: "briefly" in cell.run.output.lower() for run_id, cell in outputs.items()}
    marks = await sync_to_async(cell_marks)(experiment, list(outputs))
    assert {run_id: mark["outcome"] == "pass" for run_id, mark in marks.items()} == expected_pass
    by_variant = {v.pk: sum(expected_pass[c.run_id] for c in outputs.values() if c.variant_id == v.pk) for v in variants}
    assert [scores[v.pk].passed for v in variants] == [by_variant[v.pk] for v in variants]
    assert scores[variants[0].pk].passed + scores[variants[0].pk].failed == 6

    calls = fake_llm.stats()["chat_requests"]
    again = await sync_to_async(experiment_reevaluate)(experiment=experiment,
                                                       assertions=[{"type": "not-icontains", "value": "briefly"}])
    await sync_to_async(evaluations_work)(owner="test")
    again = await Evaluation.objects.aget(pk=again.pk)
    assert again.number == 2 and again.passed == evaluation.failed and again.failed == evaluation.passed
    assert fake_llm.stats()["chat_requests"] == calls  # nothing ran again
    assert await Evaluation.objects.filter(scope=f"experiment:{experiment.pk}").acount() == 2  # the first is kept
    experiment = await Experiment.objects.aget(pk=experiment.pk)
    assert experiment.evaluation_id == again.pk


async def test_errors_are_kept_apart_and_rescored_on_their_own(fake_llm):
    workflow, first, _ = await sync_to_async(make_two_releases)(fake_llm.base_url)
    version = await sync_to_async(make_dataset_version)(3)
    # A cost check with no price: every subject is an error, not a fail.
    experiment = await sync_to_async(start_experiment)(workflow, version, [first], assertions=[
        {"type": "cost", "threshold": 1}])
    experiment = await drive(experiment.pk)
    await sync_to_async(evaluations_work)(owner="test")
    evaluation = await Evaluation.objects.aget(pk=experiment.evaluation_id)
    assert (evaluation.passed, evaluation.failed, evaluation.errors) == (0, 0, 3) and evaluation.pass_rate is None
    assert await sync_to_async(evaluation_rescore_errors)(evaluation=evaluation) == 3
    assert await Score.objects.filter(evaluation=evaluation, outcome="pending").acount() == 3
    await sync_to_async(evaluations_work)(owner="test")
    evaluation = await Evaluation.objects.aget(pk=evaluation.pk)
    assert evaluation.status == "done" and evaluation.errors == 3 and evaluation.scored == 3


@pytest.mark.django_db
def test_bad_assertions_refuse_the_experiment_naming_the_field():
    workflow, first, _ = make_two_releases("http://127.0.0.1:9/v1")
    with pytest.raises(ValidationError) as raised:
        start_experiment(workflow, make_dataset_version(2), [first], assertions=[{"type": "regex", "value": "(?=x)"}])
    assert "assertions[0].value" in raised.value.message_dict
    assert not Experiment.objects.exists() and not Evaluation.objects.exists()


def test_wilson_interval():
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.7225, abs=1e-3)


async def test_a_cases_own_assertions_are_checked_after_the_experiments(fake_llm):
    from datasets.services import dataset_create, dataset_version_create

    workflow, first, _ = await sync_to_async(make_two_releases)(fake_llm.base_url)

    def version_with_own_checks():
        dataset = dataset_create(name="own")
        return dataset_version_create(dataset=dataset, cases=[
            {"inputs": {"topic": "t0"}, "assert": [{"type": "contains", "value": "zzz-never"}]},
            {"inputs": {"topic": "t1"}},
        ])[0]

    version = await sync_to_async(version_with_own_checks)()
    experiment = await sync_to_async(start_experiment)(workflow, version, [first])  # no assertions of its own
    experiment = await drive(experiment.pk)
    await sync_to_async(evaluations_work)(owner="test")
    evaluation = await Evaluation.objects.aget(pk=experiment.evaluation_id)
    assert (evaluation.total, evaluation.passed, evaluation.failed) == (1, 0, 1)  # a case with nothing to check is not scored
    scores = {s.run_id: s async for s in Score.objects.filter(evaluation=evaluation)}
    cells = {c.position: c async for c in Cell.objects.filter(experiment=experiment)}
    failing = scores[cells[0].run_id]
    assert failing.outcome == "fail" and failing.results[0]["index"] == "row.1"
    assert cells[1].run_id not in scores


async def test_a_bad_assertion_in_an_uploaded_case_is_a_400_naming_the_line_and_field(api):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from datasets.models import DatasetVersion
    from datasets.services import dataset_create

    dataset = await sync_to_async(dataset_create)(name="bad-assert")
    body = b'{"q": "a", "assert": [{"type": "contains", "value": "x"}]}\n{"q": "b", "assert": [{"type": "regexx"}]}\n'
    response = await sync_to_async(api.post)(f"/api/datasets/{dataset.pk}/import/",
                                             {"file": SimpleUploadedFile("c.jsonl", body)}, format="multipart")
    assert response.status_code == 400
    text = str(response.json())
    assert "line 2" in text and "assert[0].type" in text and "regexx" in text
    assert not await DatasetVersion.objects.filter(dataset=dataset).aexists()


async def test_the_api_creates_with_assertions_reevaluates_and_reports_scores(fake_llm, api, api_with_perms):
    workflow, first, _ = await sync_to_async(make_two_releases)(fake_llm.base_url)
    version = await sync_to_async(make_dataset_version)(2)
    post = sync_to_async(api.post)
    bad = await post("/api/experiments/", {"name": "x", "workflow": workflow.pk, "dataset_version": version.pk,
                                           "variants": [{"release": first.pk}],
                                           "assertions": [{"type": "contains"}]}, format="json")
    assert bad.status_code == 400 and "assertions[0].value" in bad.json()
    made = await post("/api/experiments/", {"name": "x", "workflow": workflow.pk, "dataset_version": version.pk,
                                            "variants": [{"release": first.pk}],
                                            "assertions": [{"type": "word-count", "value": {"min": 1}}]}, format="json")
    assert made.status_code == 201, made.json()
    experiment = await drive(made.json()["id"])
    await sync_to_async(evaluations_work)(owner="test")
    detail = (await sync_to_async(api.get)(f"/api/experiments/{experiment.pk}/")).json()
    assert detail["variants"][0]["scores"]["passed"] == 2 and detail["variants"][0]["scores"]["pass_rate"] == 1.0
    viewer = await sync_to_async(api_with_perms)("experiments.view_experiment")
    url = f"/api/experiments/{experiment.pk}/reevaluate/"
    assert (await sync_to_async(viewer.post)(url, {}, format="json")).status_code == 403
    again = await post(url, {"assertions": [{"type": "word-count", "value": 1}]}, format="json")
    assert again.status_code == 202 and again.json()["number"] == 2
    assert (await post(url, {"assertions": [{"type": "nope"}]}, format="json")).status_code == 400


async def test_scores_are_counted_per_metric_and_errors_come_out_when_rescored(fake_llm, api):
    workflow, first, _ = await sync_to_async(make_two_releases)(fake_llm.base_url)
    version = await sync_to_async(make_dataset_version)(3)
    experiment = await sync_to_async(start_experiment)(workflow, version, [first], assertions=[
        {"type": "word-count", "value": {"min": 1}, "metric": "length"},
        {"type": "contains", "value": "zzz-never", "metric": "style", "weight": 2},
        {"type": "cost", "threshold": 1, "metric": "budget"}])
    experiment = await drive(experiment.pk)
    await sync_to_async(evaluations_work)(owner="test")
    evaluation = await Evaluation.objects.aget(pk=experiment.evaluation_id)
    assert evaluation.metrics == {
        "length": {"passed": 3, "failed": 0, "errors": 0, "score_sum": 3.0},
        "style": {"passed": 0, "failed": 3, "errors": 0, "score_sum": 0.0},
        "budget": {"passed": 0, "failed": 0, "errors": 3, "score_sum": 0.0}}
    shown = (await sync_to_async(api.get)(f"/api/evaluations/{evaluation.pk}/")).json()["metrics"]
    assert shown["length"]["pass_rate"] == 1.0 and shown["style"]["pass_rate"] == 0.0
    assert shown["budget"]["pass_rate"] is None
    # Re-scoring errors takes only subjects whose outcome is an error: here they failed (style).
    assert await sync_to_async(evaluation_rescore_errors)(evaluation=evaluation) == 0
    only_errors = await sync_to_async(experiment_reevaluate)(
        experiment=experiment, assertions=[{"type": "cost", "threshold": 1, "metric": "budget"}])
    await sync_to_async(evaluations_work)(owner="test")
    only_errors = await Evaluation.objects.aget(pk=only_errors.pk)
    assert only_errors.metrics == {"budget": {"passed": 0, "failed": 0, "errors": 3, "score_sum": 0.0}}
    assert await sync_to_async(evaluation_rescore_errors)(evaluation=only_errors) == 3
    only_errors = await Evaluation.objects.aget(pk=only_errors.pk)
    assert only_errors.metrics["budget"]["errors"] == 0  # taken out, to be counted again
    await sync_to_async(evaluations_work)(owner="test")
    only_errors = await Evaluation.objects.aget(pk=only_errors.pk)
    assert only_errors.metrics["budget"]["errors"] == 3 and only_errors.errors == 3
