import pytest

from runs.models import Response, Run
from runs.runner import execute_run
from runs.services import run_start
from tests.factories import expected_chain_output, make_chain, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("stream", [False, True])
async def test_three_step_chain_output_is_the_expected_text(fake_llm, stream):
    from asgiref.sync import sync_to_async

    def setup():
        workflow = make_chain(make_endpoint(fake_llm.base_url), stream=stream)
        return run_start(workflow=workflow, inputs={"topic": "tides"}, user=None)

    run = await sync_to_async(setup)()
    status = await execute_run(run.pk)
    assert status == "succeeded"
    run = await Run.objects.aget(pk=run.pk)
    assert run.output == expected_chain_output("tides")
    responses = [r async for r in Response.objects.filter(run=run).order_by("index")]
    assert [r.index for r in responses] == [0, 1, 2]
    assert all(r.status == "succeeded" and r.completion_tokens == 20 for r in responses)
    assert run.completion_tokens == 60
    assert fake_llm.stats()["chat_requests"] == 3
