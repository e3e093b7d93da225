"""`{% review_agreement experiment as agreement %}`: people's agreement with the judges, for
templates/evaluations/_agreement.html wherever it is included."""
from __future__ import annotations

from django import template

from evaluations.reviews import Agreements
from experiments.models import Experiment
from experiments.reviews import experiment_agreement

register = template.Library()


@register.simple_tag
def review_agreement(experiment: Experiment) -> Agreements:
    return experiment_agreement(experiment)


@register.filter
def share(part: int, whole: int) -> str:
    """3, 4 -> '75 %' (a space that does not break); empty when there is no whole."""
    return f"{round(100 * part / whole)}\u00a0%" if whole else ""
