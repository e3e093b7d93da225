"""Assertions: each type's pass, fail and error, negation, weights, thresholds, sets, targets,
templated values, and hostile patterns and schemas that must not hang."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from evaluations.checks import ERROR, FAIL, PASS, Subject, compile_assertions, evaluate


def outcome(spec: dict, output: str = "", **subject) -> str:
    return evaluate(compile_assertions([spec]), Subject(output=output, **subject)).results[0].outcome


@pytest.mark.parametrize(("spec", "output", "expected"), [
    ({"type": "equals", "value": "Paris"}, "Paris", PASS),
    ({"type": "equals", "value": "Paris"}, "paris", FAIL),
    ({"type": "equals", "value": {"a": 1}}, '{"a": 1}', PASS),
    ({"type": "equals", "value": {"a": 1}}, "not json", ERROR),
    ({"type": "contains", "value": "cat"}, "a cat sat", PASS),
    ({"type": "icontains", "value": "CAT"}, "a cat sat", PASS),
    ({"type": "contains", "value": "CAT"}, "a cat sat", FAIL),
    ({"type": "contains-any", "value": ["dog", "cat"]}, "a cat", PASS),
    ({"type": "contains-all", "value": ["dog", "cat"]}, "a cat", FAIL),
    ({"type": "icontains-all", "value": ["DOG", "cat"]}, "a dog and a cat", PASS),
    ({"type": "icontains-any", "value": ["DOG", "BIRD"]}, "a cat", FAIL),
    ({"type": "starts-with", "value": "Yes"}, "Yes, indeed", PASS),
    ({"type": "regex", "value": r"^\d{3}-\d{4}$"}, "555-1234", PASS),
    ({"type": "regex", "value": r"^\d{3}-\d{4}$"}, "5551234", FAIL),
    ({"type": "is-json"}, '{"x": [1, 2]}', PASS),
    ({"type": "is-json"}, "{x: 1}", FAIL),
    ({"type": "is-json", "value": {"type": "object", "required": ["name"]}}, '{"x": 1}', FAIL),
    ({"type": "contains-json", "value": {"type": "object", "required": ["x"]}}, 'Here: {"x": 1} done', PASS),
    ({"type": "contains-json"}, "no json here", FAIL),
    ({"type": "levenshtein", "value": "kitten", "threshold": 3}, "sitting", PASS),
    ({"type": "levenshtein", "value": "kitten", "threshold": 2}, "sitting", FAIL),
    ({"type": "word-count", "value": {"min": 2, "max": 3}}, "one two three", PASS),
    ({"type": "word-count", "value": 2}, "one two three", FAIL),
    ({"type": "finish-reason", "value": "stop"}, "x", FAIL),
    ({"type": "not-contains", "value": "sorry"}, "Sure!", PASS),
    ({"type": "not-contains", "value": "sorry"}, "I'm sorry", FAIL),
    ({"type": "not-is-json"}, "plain", PASS),
])
def test_each_type(spec, output, expected):
    assert outcome(spec, output) == expected


def test_figures_checks_and_their_errors():
    assert outcome({"type": "latency", "threshold": 500}, latency_ms=120) == PASS
    assert outcome({"type": "latency", "threshold": 100}, latency_ms=120) == FAIL
    assert outcome({"type": "cost", "threshold": 0.01}, cost=Decimal("0.002")) == PASS
    assert outcome({"type": "cost", "threshold": 0.01}) == ERROR  # no price: not a fail
    assert outcome({"type": "finish-reason", "value": "length"}, finish_reason="length") == PASS
    # A negated error stays an error.
    assert outcome({"type": "not-cost", "threshold": 0.01}) == ERROR


def test_targets_a_step_a_json_path_and_templated_values():
    subject = Subject(output='{"items": [{"name": "Ada"}]}', output_json={"items": [{"name": "Ada"}]},
                      steps={"draft": "first try"}, variables={"expected": "Ada", "topic": "x"})
    checks = compile_assertions([
        {"type": "equals", "path": "items[0].name", "value": "{{ expected }}"},
        {"type": "contains", "step": "draft", "value": "first"},
        {"type": "equals", "path": "items[3].name", "value": "Ada"},
        {"type": "contains", "step": "missing", "value": "x"},
        {"type": "equals", "value": "{{ nope }}"},
    ])
    results = evaluate(checks, subject).results
    assert [r.outcome for r in results] == [PASS, PASS, ERROR, ERROR, ERROR]
    assert "items[3].name" in results[2].reason and "missing" in results[3].reason and "nope" in results[4].reason


def test_weights_thresholds_metrics_and_sets():
    checks = compile_assertions([
        {"type": "contains", "value": "a", "weight": 3, "metric": "style"},
        {"type": "contains", "value": "zzz", "weight": 1},
        {"type": "assert-set", "threshold": 0.5, "assert": [
            {"type": "contains", "value": "a"}, {"type": "contains", "value": "q"}]},
        {"type": "cost", "threshold": 1},  # an error: left out of the score
    ])
    verdict = evaluate(checks, Subject(output="abc"))
    assert [r.outcome for r in verdict.results] == [PASS, FAIL, PASS, ERROR]
    assert verdict.results[0].metric == "style"
    assert verdict.results[2].score == 0.5 and [c.index for c in verdict.results[2].children] == ["3.1", "3.2"]
    assert verdict.outcome == FAIL and verdict.reason.startswith("#2 contains")
    assert verdict.score == pytest.approx((3 * 1 + 1 * 0 + 1 * 0.5) / 5)


@pytest.mark.parametrize(("spec", "field"), [
    ({"type": "contains-everything", "value": "x"}, "assertions[0].type"),
    ({"type": "not-assert-set", "assert": []}, "assertions[0].type"),
    ({"type": "regex", "value": "(unclosed"}, "assertions[0].value"),
    ({"type": "regex", "value": r"(a)\1"}, "assertions[0].value"),  # a backreference: RE2 refuses it
    ({"type": "is-json", "value": {"type": "nonsense"}}, "assertions[0].value"),
    ({"type": "is-json", "value": {"$ref": "https://example.com/s.json"}}, "assertions[0].value"),
    ({"type": "is-json", "value": {"type": "string", "pattern": "(?<=x)y"}}, "assertions[0].value"),
    ({"type": "contains", "value": "x", "threshold": 2}, "assertions[0].threshold"),
    ({"type": "contains", "value": "x", "weight": -1}, "assertions[0].weight"),
    ({"type": "latency"}, "assertions[0].threshold"),
    ({"type": "contains", "value": "{{ broken"}, "assertions[0].value"),
    ({"type": "equals", "value": "x", "path": "a..b"}, "assertions[0].path"),
    ({"type": "assert-set", "assert": [{"type": "bogus"}]}, "assertions[0].assert[0].type"),
    ({"type": "contains", "value": "x", "colour": "red"}, "assertions[0].colour"),
])
def test_bad_specs_name_the_assertion_and_the_field(spec, field):
    with pytest.raises(ValidationError) as raised:
        compile_assertions([spec])
    assert field in raised.value.message_dict, raised.value.message_dict


def test_a_catastrophic_regex_runs_in_linear_time():
    checks = compile_assertions([{"type": "regex", "value": r"^(a+)+$"},
                                 {"type": "is-json", "value": {"type": "string", "pattern": r"^(a|aa)+$"}},
                                 {"type": "is-json", "value": {"type": "object", "patternProperties": {r"^(a+)+$": {}}}}])
    hostile = "a" * 50_000 + "!"
    started = time.process_time()
    results = evaluate(checks, Subject(output=hostile)).results
    results += evaluate(checks[1:2], Subject(output='"' + hostile + '"')).results
    results += evaluate(checks[2:], Subject(output='{"' + hostile + '": 1}')).results
    # A backtracking engine takes longer than the age of the universe here; RE2 takes milliseconds.
    assert time.process_time() - started < 5
    assert results[0].outcome == FAIL and results[3].outcome == FAIL


def test_a_huge_json_output_is_not_schema_checked_but_said_so():
    big = "[" + ",".join(["1"] * 200_000) + "]"
    result = evaluate(compile_assertions([{"type": "is-json", "value": {"type": "array", "uniqueItems": True}}]),
                      Subject(output=big)).results[0]
    assert result.outcome == ERROR and "not checked" in result.reason
