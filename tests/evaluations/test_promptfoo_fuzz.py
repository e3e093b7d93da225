"""Any promptfooconfig, however odd, is imported or refused with a 400 naming a field: never another error."""
from __future__ import annotations

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from experiments.promptfoo import promptfoo_import
from llm.models import Endpoint
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, width=32),
                    st.sampled_from(["{{q}}", "openai:gpt-4o-mini", "file://x", "contains", "not-regex", "(", "q",
                                     "assert-set", "llm-rubric", "[{\"role\": \"user\", \"content\": \"{{q}}\"}]"]),
                    st.text(max_size=8))
KEYS = st.sampled_from(["type", "value", "vars", "assert", "raw", "label", "id", "config", "threshold", "q",
                        "temperature", "transform", "prompts", "description", "weight", "metric"])
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                      max_leaves=12)
TYPES = st.sampled_from(["contains", "not-icontains", "regex", "equals", "assert-set", "javascript", "llm-rubric",
                         "levenshtein", "word-count", "latency", "is-json", "similar", "factuality"])
ASSERTION = st.recursive(
    st.fixed_dictionaries({"type": TYPES}, optional={"value": VALUES, "threshold": SCALARS, "weight": SCALARS,
                                                     "metric": SCALARS, "provider": SCALARS, "transform": SCALARS}),
    lambda inner: st.fixed_dictionaries({"type": st.just("assert-set"), "assert": st.lists(inner, max_size=3)},
                                        optional={"threshold": SCALARS}),
    max_leaves=4) | VALUES
TEST = st.fixed_dictionaries({"vars": st.integers(0, 3).flatmap(lambda n: VALUES if n == 0 else st.just({"q": "x"}))},
                             optional={"assert": st.lists(ASSERTION, max_size=3), "description": SCALARS,
                                       "options": VALUES})


def mostly(valid: object, odd: st.SearchStrategy) -> st.SearchStrategy:
    """The valid value three times in four, so that odd parts are tried inside configs that otherwise import."""
    return st.integers(0, 3).flatmap(lambda n: odd if n == 0 else st.just(valid))


CONFIGS = st.fixed_dictionaries({
    "prompts": mostly(["{{q}}"], st.lists(st.just("{{q}}") | st.fixed_dictionaries(
        {"raw": SCALARS}, optional={"label": SCALARS}) | SCALARS, max_size=3) | VALUES),
    "providers": mostly(["openai:gpt-4o-mini"], st.lists(st.fixed_dictionaries(
        {"id": SCALARS}, optional={"label": SCALARS, "config": st.dictionaries(KEYS, VALUES), "prompts": VALUES}),
        max_size=2) | VALUES),
    "tests": st.lists(TEST, min_size=1, max_size=3) | VALUES,
}, optional={"defaultTest": st.fixed_dictionaries({}, optional={"vars": VALUES, "assert": st.lists(ASSERTION)})
             | VALUES, "description": SCALARS})


@settings(max_examples=200, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(config=CONFIGS)
def test_any_config_is_imported_or_refused_naming_a_field(config):
    if not Endpoint.objects.filter(name="fake").exists():
        make_endpoint(name="fake")
    try:
        with transaction.atomic():
            promptfoo_import(yaml.safe_dump(config), default_endpoint="fake", name_prefix="fuzz")
            transaction.set_rollback(True)
        event("imported")
    except ValidationError as error:
        assert error.message_dict and all(error.message_dict.values())
        event("refused")
        event(sorted(error.message_dict)[0].split("[")[0].split(".")[0])
