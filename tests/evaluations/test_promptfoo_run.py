"""An imported promptfooconfig runs as an experiment against the fake server and is scored by its assertions."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from evaluations.models import Evaluation, Score
from evaluations.work import evaluations_work
from experiments.promptfoo import promptfoo_import
from tests.experiments.test_driver import drive
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = """\
prompts:
  - "Say briefly: {{topic}}"
  - "Say in detail: {{topic}}"
providers: [openai:gpt-4o-mini]
defaultTest:
  assert:
    - type: icontains
      value: briefly
tests:
  - vars: {topic: apples}
    assert:
      - type: javascript
        value: "true"
  - vars: {topic: pears}
    assert:
      - type: not-icontains
        value: "{{topic}}"
"""


async def test_an_imported_config_runs_and_is_scored(fake_llm):
    await sync_to_async(make_endpoint)(fake_llm.base_url, name="fake")
    report = await sync_to_async(promptfoo_import)(CONFIG, default_endpoint="fake", name_prefix="fruit",
                                                   create_experiment=True)
    experiment = await drive(report.experiment.pk)
    assert experiment.succeeded == 4
    await sync_to_async(evaluations_work)(owner="test")
    evaluation = await Evaluation.objects.aget(pk=experiment.evaluation_id)
    assert evaluation.status == "done" and evaluation.scored == 4
    # The fake server echoes words of the prompt: only the "briefly" prompt passes the default assertion,
    # and the pears case's own not-icontains fails wherever the topic is echoed.
    outcomes = {}
    async for score in Score.objects.filter(evaluation=evaluation).select_related("run"):
        outcomes[(score.run.inputs["topic"], "briefly" in score.run.output.lower(),
                  "pears" in score.run.output.lower())] = score.outcome
    for (topic, brief, echoed), outcome in outcomes.items():
        assert outcome == ("pass" if brief and not (topic == "pears" and echoed) else "fail"), (topic, brief, echoed)
    assert len(outcomes) == 4 and set(outcomes.values()) == {"pass", "fail"}, outcomes
