"""A workflow's assertions, checked on every run of it that succeeds, from the moment they are set."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from evaluations.models import Evaluation, Score
from evaluations.services import run_checks_set
from evaluations.work import evaluations_work
from runs.engine import execute_run
from runs.services import run_start
from tests.factories import make_chain, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)


async def test_runs_are_checked_as_they_finish_and_new_assertions_start_a_new_evaluation(fake_llm):
    workflow = await sync_to_async(lambda: make_chain(make_endpoint(fake_llm.base_url)))()
    start = sync_to_async(lambda topic: run_start(workflow=workflow, inputs={"topic": topic}, user=None))
    before = await start("before")
    await execute_run(before.pk)
    checks = await sync_to_async(run_checks_set)(workflow=workflow, assertions=[{"type": "word-count", "value": 20}])
    done, pending = await start("one"), await start("two")
    await execute_run(done.pk)
    await sync_to_async(evaluations_work)(owner="test")
    scores = [s async for s in Score.objects.filter(evaluation_id=checks.evaluation_id)]
    # The run from before the checks is not scored; the queued one is waited for, not skipped.
    assert [(s.run_id, s.outcome) for s in scores] == [(done.pk, "pass")]
    await execute_run(pending.pk)
    await sync_to_async(evaluations_work)(owner="test")
    assert await Score.objects.filter(evaluation_id=checks.evaluation_id).acount() == 2

    changed = await sync_to_async(run_checks_set)(workflow=workflow, assertions=[{"type": "word-count", "value": 3}])
    assert changed.evaluation_id != checks.evaluation_id
    after = await start("three")
    await execute_run(after.pk)
    await sync_to_async(evaluations_work)(owner="test")
    assert [(s.run_id, s.outcome) async for s in Score.objects.filter(evaluation_id=changed.evaluation_id)] == [
        (after.pk, "fail")]
    assert await Evaluation.objects.filter(scope=f"workflow:{workflow.pk}").acount() == 2

    await sync_to_async(run_checks_set)(workflow=workflow, assertions=changed.assertions, enabled=False)
    off = await start("four")
    await execute_run(off.pk)
    await sync_to_async(evaluations_work)(owner="test")
    assert not await Score.objects.filter(run_id=off.pk).aexists()


@pytest.mark.django_db
def test_a_workflow_cannot_judge_itself():
    workflow = make_chain(make_endpoint(), name="selfie")
    with pytest.raises(ValidationError) as raised:
        run_checks_set(workflow=workflow, assertions=[{"type": "llm-rubric", "value": "x", "judge": "selfie"}])
    assert "assertions[0].judge" in raised.value.message_dict
