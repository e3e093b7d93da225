"""Pruning old runs that were scored: their scores go with them (the prune deletes without cascades,
so a score left behind would point at no run and fail the batch's commit)."""
import datetime

import pytest
from django.utils import timezone

from evaluations.models import Evaluation, Score
from evaluations.services import evaluation_create
from runs.models import Run, RunStatus
from runs.retention import runs_prune
from tests.factories import make_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_scored_run_is_pruned_with_its_scores_and_the_evaluation_stays():
    scored, fresh = make_run(status=RunStatus.SUCCEEDED), make_run(status=RunStatus.SUCCEEDED)
    evaluation = evaluation_create(scope="runs", assertions=[{"type": "contains", "value": "a"}],
                                   subjects=[(scored.pk, None, None), (fresh.pk, None, None)])
    Run.objects.filter(pk=scored.pk).update(created_at=timezone.now() - datetime.timedelta(days=100))
    report = runs_prune(older_than=datetime.timedelta(days=30), reclaim=False, pause=0)
    assert report.runs == 1 and list(Run.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert list(Score.objects.values_list("run_id", flat=True)) == [fresh.pk]
    assert Evaluation.objects.filter(pk=evaluation.pk).exists()
