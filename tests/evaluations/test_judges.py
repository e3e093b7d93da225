"""LLM judges: workflows of this project, run through the engine; their verdicts, their failures (an
error, never a fail) and their cost are recorded; the default judges are seeded by the demo."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from evaluations.models import Evaluation, Score
from evaluations.work import evaluations_work
from runs.engine import execute_run
from runs.models import Run
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment
from tests.experiments.test_driver import drive
from tests.factories import make_endpoint
from workflows.models import Workflow

pytestmark = pytest.mark.django_db(transaction=True)


async def judge_all() -> Evaluation:
    """Score, run the judges' runs the scoring started, and score again until the evaluation is done."""
    for _ in range(10):
        await sync_to_async(evaluations_work)(owner="test")
        queued = [pk async for pk in Run.objects.filter(status="queued").values_list("pk", flat=True)]
        for run_id in queued:
            await execute_run(run_id)
        evaluation = await Evaluation.objects.order_by("-id").afirst()
        if evaluation.status == "done":
            return evaluation
    raise AssertionError("the evaluation did not finish")


async def test_a_rubric_is_judged_by_a_judge_workflow_run_through_the_engine(fake_llm):
    workflow, first, _ = await sync_to_async(make_two_releases)(fake_llm.base_url)
    await sync_to_async(call_command)("seed_judges", endpoint=(await sync_to_async(lambda: workflow.steps.first().payload.endpoint.name)()))
    version = await sync_to_async(make_dataset_version)(3)
    experiment = await sync_to_async(start_experiment)(workflow, version, [first], assertions=[
        {"type": "llm-rubric", "value": "Answers the question about {{ topic }}", "metric": "quality"},
        {"type": "not-llm-rubric", "value": "Is rude"}, {"type": "contains", "value": "zzz-never"}])
    experiment = await drive(experiment.pk)
    before = fake_llm.stats()["chat_requests"]
    evaluation = await judge_all()
    # Two judges per case, each one run of the judge workflow (its call recorded like any step).
    judge_runs = [r async for r in Run.objects.filter(workflow_name="judge-rubric")]
    assert len(judge_runs) == 6 and all(r.status == "succeeded" for r in judge_runs)
    assert fake_llm.stats()["chat_requests"] - before == 6
    rubric_inputs = sorted(r.inputs["rubric"] for r in judge_runs)
    assert rubric_inputs[:3] == ["Answers the question about t0", "Answers the question about t1",
                                 "Answers the question about t2"]
    assert all(r.inputs["output"] for r in judge_runs)
    # The fake judge always says pass: the rubric passes, its negation fails, so does the contains.
    assert (evaluation.passed, evaluation.failed, evaluation.errors) == (0, 3, 0)
    async for score in Score.objects.filter(evaluation=evaluation):
        outcomes = [r["outcome"] for r in score.results]
        assert outcomes == ["pass", "fail", "fail"]
        assert {r["judge_run_id"] for r in score.results[:2]} <= {r.pk for r in judge_runs}


async def test_a_judge_that_fails_is_an_error_not_a_fail(fake_llm):
    workflow, first, _ = await sync_to_async(make_two_releases)(fake_llm.base_url, max_retries=0)
    endpoint_name = await sync_to_async(lambda: workflow.steps.first().payload.endpoint.name)()
    await sync_to_async(call_command)("seed_judges", endpoint=endpoint_name)
    version = await sync_to_async(make_dataset_version)(2)
    experiment = await sync_to_async(start_experiment)(workflow, version, [first], concurrency=1, assertions=[
        {"type": "llm-rubric", "value": "Is short"}, {"type": "factuality", "judge": "no-such-judge"}])
    await drive(experiment.pk)
    await sync_to_async(evaluations_work)(owner="test")
    fake_llm.fail_next({"status": 500}, {"status": 500})
    evaluation = await judge_all()
    assert (evaluation.passed, evaluation.failed, evaluation.errors) == (0, 0, 2)
    async for score in Score.objects.filter(evaluation=evaluation):
        first_result, second_result = score.results
        assert first_result["outcome"] == "error" and "judge's run" in first_result["reason"]
        assert second_result["outcome"] == "error" and "no-such-judge" in second_result["reason"]


@pytest.mark.django_db
def test_seeding_the_default_judges_twice_makes_them_once():
    endpoint = make_endpoint()
    call_command("seed_judges", endpoint=endpoint.name)
    call_command("seed_judges", endpoint=endpoint.name)  # again: nothing new, nothing broken
    judges = Workflow.objects.filter(name__in=["judge-rubric", "judge-factuality"])
    assert judges.count() == 2
    for judge in judges:
        payload = judge.steps.get().payload
        assert payload.json_schema["required"] == ["pass", "score", "reason"]
