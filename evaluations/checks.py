"""Assertions: promptfoo's deterministic types, checked against one output in microseconds.

A spec is a dict: `type` (with an optional `not-` prefix), `value`, `threshold`, `weight` (default
1), `metric` (a name scores are grouped by), and what it looks at: the final output (default), a
named step's output (`step`), or a field of the JSON output (`path`, e.g. `items[0].name`).
`assert-set` groups specs (`assert`) into one result. Values may use the case's variables
(`{{ expected }}`, the inputs) through the prompt templates' sandbox; a value that is exactly one
variable takes that variable's value as it is (a JSON `expected` compares as JSON).

Every check ends `pass`, `fail` or `error` (the output could not be read the way the check needs,
a variable is missing): an error is not a fail, and pass rates leave it out.

Hostile input: regular expressions run on RE2 (linear time, no backtracking), in `regex` and in a
JSON Schema's `pattern`/`patternProperties`; schemas and validated documents have size caps.
`compile_assertions` refuses what cannot be checked, naming the assertion and the field.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import re2
from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as SchemaValidationError
from rapidfuzz.distance import Levenshtein

from blocks.templating import TemplateProblem, check_syntax, render

PASS, FAIL, ERROR = "pass", "fail", "error"
MAX_ASSERTIONS = 50
MAX_DEPTH = 3  # assert-set inside assert-set inside ...
MAX_PATTERN_CHARS = 2_000
MAX_SCHEMA_CHARS = 32_000
MAX_VALIDATED_CHARS = 256_000  # a JSON output longer than this is not schema-checked (an error, not a fail)
RE2_OPTIONS = re2.Options()
RE2_OPTIONS.max_mem = 8 << 20
SIMPLE_TYPES = ("equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any", "icontains-all",
                "starts-with", "regex", "is-json", "contains-json", "levenshtein", "word-count", "latency", "cost",
                "finish-reason")
# Model-graded: a judge (a workflow of this project whose output is {pass, score, reason}) decides.
JUDGE_TYPES = ("llm-rubric", "factuality")
DEFAULT_JUDGES = {"llm-rubric": "judge-rubric", "factuality": "judge-factuality"}
TYPES = (*SIMPLE_TYPES, *JUDGE_TYPES, "assert-set")
# Types whose threshold is a limit on what they measure (ms, money, edits), not a score from 0 to 1.
LIMIT_THRESHOLDS = frozenset({"latency", "cost", "levenshtein"})
SPEC_KEYS = {"type", "value", "threshold", "weight", "metric", "step", "path", "assert", "description", "judge"}
PENDING = "pending"  # a judge's verdict is not in yet
ONE_VARIABLE = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
PATH_PART = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")


@dataclass
class Subject:
    """What a check looks at: one run's (or cell's) outputs and figures, and the case's variables."""

    output: str
    output_json: Any = None
    steps: dict[str, Any] = field(default_factory=dict)  # output_key -> text (or parsed JSON)
    latency_ms: int | None = None
    cost: Decimal | None = None
    finish_reason: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    # Judges' verdicts by check index: {"pass": bool, "score": float, "reason": str} or {"error": str}.
    judged: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Result:
    index: str  # "2", or "3.1" inside an assert-set
    type: str
    outcome: str
    score: float
    weight: float
    metric: str
    reason: str
    children: list[Result] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = {"index": self.index, "type": self.type, "outcome": self.outcome, "score": round(self.score, 6),
                "weight": self.weight, "metric": self.metric, "reason": self.reason}
        if self.children:
            data["children"] = [c.as_json() for c in self.children]
        return data


class CheckProblem(Exception):
    """The check could not be made (an `error` outcome, not a fail)."""


# --- JSON Schema with RE2 patterns ------------------------------------------------------------------

def _re2_search(pattern: str, text: str) -> bool:
    return _re2(pattern).search(text) is not None


_compiled_re2: dict[str, Any] = {}


def _re2(pattern: str) -> Any:
    compiled = _compiled_re2.get(pattern)
    if compiled is None:
        if len(_compiled_re2) > 4096:
            _compiled_re2.clear()
        compiled = _compiled_re2[pattern] = re2.compile(pattern, RE2_OPTIONS)
    return compiled


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[SchemaValidationError]:
    if validator.is_type(instance, "string") and not _re2_search(pattern, instance):
        yield SchemaValidationError(f"{instance!r:.80} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
                        ) -> Iterator[SchemaValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _re2_search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


_Validator = validators.extend(Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties})


def _schema_problem(schema: Any) -> str | None:
    if not isinstance(schema, dict | bool):
        return "A JSON Schema is an object."
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        return f"The schema is longer than {MAX_SCHEMA_CHARS} characters."
    try:
        _Validator.check_schema(schema)
    except SchemaError as exc:
        return f"Not a valid JSON Schema: {exc.message}"
    for pattern in _schema_patterns(schema):
        problem = _regex_problem(pattern)
        if problem:
            return f"Pattern {pattern!r}: {problem}"
    if "$ref" in json.dumps(schema) and any(not ref.startswith("#") for ref in _schema_refs(schema)):
        return "Only local references ($ref starting with #) are allowed: nothing is fetched."
    return None


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _schema_patterns(schema: Any) -> Iterator[str]:
    for key, value in _walk(schema):
        if key == "pattern" and isinstance(value, str):
            yield value
        elif key == "patternProperties" and isinstance(value, dict):
            yield from value


def _schema_refs(schema: Any) -> Iterator[str]:
    return (value for key, value in _walk(schema) if key == "$ref" and isinstance(value, str))


def _regex_problem(pattern: Any) -> str | None:
    if not isinstance(pattern, str) or not pattern:
        return "A regular expression is a non-empty string."
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"Longer than {MAX_PATTERN_CHARS} characters."
    try:
        re2.compile(pattern, RE2_OPTIONS)
    except re2.error as exc:
        return f"Not a regular expression RE2 accepts (no backreferences or lookaround): {exc}"
    return None


# --- Reading the subject ---------------------------------------------------------------------------

def _parse_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    position = 0
    while position < len(path):
        match = PATH_PART.match(path, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot read “{path}” at character {position + 1}")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if not parts:
        raise ValueError("empty path")
    return parts


def _as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise CheckProblem(f"the output is not JSON ({exc.msg})") from None
    return value


def _dig(value: Any, parts: list[str | int], path: str) -> Any:
    for part in parts:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            raise CheckProblem(f"the output has no “{path}”") from None
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --- One check -------------------------------------------------------------------------------------

def _words(text: str) -> int:
    return len(text.split())


def _find_json(text: str) -> Any:
    decoder = json.JSONDecoder()
    tried = 0
    for match in re.finditer(r"[\[{]", text):
        tried += 1
        if tried > 50:
            break
        try:
            return decoder.raw_decode(text, match.start())[0]
        except json.JSONDecodeError:
            continue
    raise CheckProblem("the output contains no JSON object or array")


def _matches_schema(value: Any, schema: Any) -> tuple[bool, str]:
    if schema is None:
        return True, ""
    if len(_text(value)) > MAX_VALIDATED_CHARS:
        raise CheckProblem(f"the JSON is longer than {MAX_VALIDATED_CHARS} characters: not checked")
    error = next(iter(_Validator(schema).iter_errors(value)), None)
    if error is None:
        return True, ""
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return False, f"at {where}: {error.message}"


def _strings(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _contains(kind: str, text: str, value: Any) -> tuple[bool, str]:
    folded = kind.startswith("i")
    haystack = text.lower() if folded else text
    needles = _strings(value)
    found = [n for n in needles if (n.lower() if folded else n) in haystack]
    if kind.endswith("-any"):
        return bool(found), "" if found else f"contains none of {needles!r:.200}"
    if kind.endswith("-all"):
        missing = [n for n in needles if n not in found]
        return not missing, "" if not missing else f"does not contain {missing!r:.200}"
    return bool(found), "" if found else f"does not contain {needles[0]!r:.200}"


Outcome = tuple[bool, float, str]


def _verdict(passed: bool, reason: str) -> Outcome:
    return passed, float(passed), "" if passed else reason


def _equals(text: str, raw: Any, spec: dict[str, Any], value: Any, subject: Subject) -> Outcome:
    passed = _as_json(raw) == value if isinstance(value, dict | list) else text == str(value)
    return _verdict(passed, f"expected {str(value)!r:.200}, got {text!r:.200}")


def _containing(kind: str) -> Callable[..., Outcome]:
    def check(text: str, raw: Any, spec: dict[str, Any], value: Any, subject: Subject) -> Outcome:
        passed, reason = _contains(kind, text, value)
        return passed, float(passed), reason
    return check


def _starts_with(text: str, raw: Any, spec: dict[str, Any], value: Any, subject: Subject) -> Outcome:
    return _verdict(text.startswith(str(value)), f"does not start with {str(value)!r:.200}")


def _regex(text: str, raw: Any, spec: dict[str, Any], value: Any, subject: Subject) -> Outcome:
    return _verdict(_re2(str(value)).search(text) is not None, f"does not match {str(value)!r:.200}")


def _is_json(text: str, raw: Any, spec: dict[str, Any], value: Any, subject: Subject) -> Outcome:
    try:
        parsed = raw if raw is not None and not isinstance(raw, str) else json.loads(text)
    except json.JSONDecodeError as exc:
        return False, 0.0, f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    passed, reason = _matches_schema(parsed, value)
    return passed, float(passed), reason


def _contains_json(text: str, raw: Any, spec: dict[str, Any], value: Any, subject: Subject) -> Outcome:
    try:
        found = _find_json(text) if isinstance(raw, str) or raw is None else raw
    except CheckProblem as exc:
        return False, 0.0, str(exc)
    passed, reason = _matches_schema(found, value)
    return passed, float(passed), reason


def _levenshtein(text: str, raw: Any, spec: dict[str, Any], value: Any, subject: Subject) -> Outcome:
    limit = int(spec.get("threshold", 5))
    # Counting stops past the limit: a long output costs no more than it must.
    distance = Levenshtein.distance(text, str(value), score_cutoff=limit)
    return _verdict(distance <= limit, f"edit distance over {limit}")


def _word_count(text: str, raw: Any, spec: dict[str, Any], value: Any, subject: Subject) -> Outcome:
    count = _words(text)
    low, high = (value, value) if isinstance(value, int) else (value.get("min"), value.get("max"))
    passed = (low is None or count >= low) and (high is None or count <= high)
    return _verdict(passed, f"{count} words, not within {low}..{high}")


def _latency(text: str, raw: Any, spec: dict[str, Any], value: Any, subject: Subject) -> Outcome:
    if subject.latency_ms is None:
        raise CheckProblem("no latency recorded")
    return _verdict(subject.latency_ms <= spec["threshold"], f"{subject.latency_ms} ms > {spec['threshold']} ms")


def _cost(text: str, raw: Any, spec: dict[str, Any], value: Any, subject: Subject) -> Outcome:
    if subject.cost is None:
        raise CheckProblem("the cost is unknown (no price)")
    return _verdict(subject.cost <= Decimal(str(spec["threshold"])), f"cost {subject.cost} > {spec['threshold']}")


def _finish_reason(text: str, raw: Any, spec: dict[str, Any], value: Any, subject: Subject) -> Outcome:
    return _verdict(subject.finish_reason == str(value), f"finished with {subject.finish_reason!r}, not {value!r}")


CHECKS: dict[str, Callable[[str, Any, dict[str, Any], Any, Subject], Outcome]] = {
    "equals": _equals, "starts-with": _starts_with, "regex": _regex, "is-json": _is_json,
    "contains-json": _contains_json, "levenshtein": _levenshtein, "word-count": _word_count, "latency": _latency,
    "cost": _cost, "finish-reason": _finish_reason,
    **{kind: _containing(kind) for kind in ("contains", "icontains", "contains-any", "contains-all", "icontains-any",
                                            "icontains-all")},
}


# --- Compiled assertions ---------------------------------------------------------------------------

@dataclass
class Check:
    index: str
    type: str  # as written, with its not- prefix
    kind: str  # without it
    negate: bool
    spec: dict[str, Any]
    weight: float
    metric: str
    threshold: float | None
    step: str | None
    path: list[str | int] | None
    value_template: str | None  # a value with {{ }}: rendered per case
    variable: str | None = None  # a value that is one variable, "{{ expected }}": taken as it is, unrendered
    children: list[Check] = field(default_factory=list)

    def value(self, subject: Subject) -> Any:
        if self.value_template is None:
            return self.spec.get("value")
        if self.variable is not None:
            if self.variable not in subject.variables:
                raise CheckProblem(f"its value could not be filled in: missing variable: '{self.variable}' is undefined")
            return subject.variables[self.variable]
        try:
            return render(self.value_template, subject.variables)
        except TemplateProblem as exc:
            raise CheckProblem(f"its value could not be filled in: {exc}") from None

    def target(self, subject: Subject) -> Any:
        value: Any
        if self.step is not None:
            if self.step not in subject.steps:
                raise CheckProblem(f"the run has no step “{self.step}”")
            value = subject.steps[self.step]
        else:
            value = subject.output_json if subject.output_json is not None and self.path else subject.output
        if self.path is not None:
            value = _dig(_as_json(value), self.path, self.spec["path"])
        return value

    @property
    def judge(self) -> str | None:
        if self.kind not in JUDGE_TYPES:
            return None
        return str(self.spec.get("judge") or DEFAULT_JUDGES[self.kind])

    def judge_inputs(self, subject: Subject) -> dict[str, Any]:
        """What the judge is asked: the output checked, the rubric (or the reference answer), the case."""
        target = self.target(subject)
        return {"output": _text(target) if target is not None else "", "rubric": _text(self.value(subject) or ""),
                "expected": _text(subject.variables.get("expected") or ""),
                "input": json.dumps({k: v for k, v in subject.variables.items() if k != "expected"}, ensure_ascii=False)}

    def _evaluate_judged(self, subject: Subject) -> Result:
        verdict = subject.judged.get(self.index)
        if verdict is None:
            return Result(self.index, self.type, PENDING, 0.0, self.weight, self.metric, "waiting for the judge")
        if "error" in verdict:
            return Result(self.index, self.type, ERROR, 0.0, self.weight, self.metric, verdict["error"])
        passed, score = bool(verdict.get("pass")), float(verdict.get("score", 1.0 if verdict.get("pass") else 0.0))
        score = min(max(score, 0.0), 1.0)
        reason = str(verdict.get("reason") or "")[:1000]
        if self.negate:
            passed, score = not passed, 1.0 - score
        if self.threshold is not None:
            passed = score >= self.threshold
        return Result(self.index, self.type, PASS if passed else FAIL, score, self.weight, self.metric, reason)

    def evaluate(self, subject: Subject) -> Result:
        if self.kind == "assert-set":
            return self._evaluate_set(subject)
        if self.kind in JUDGE_TYPES:
            return self._evaluate_judged(subject)
        try:
            raw = self.target(subject)
            passed, score, reason = CHECKS[self.kind](_text(raw) if raw is not None else "", raw, self.spec,
                                                      self.value(subject), subject)
        except CheckProblem as exc:
            return Result(self.index, self.type, ERROR, 0.0, self.weight, self.metric, str(exc))
        if self.negate:
            passed, score = not passed, 1.0 - score
            reason = "" if passed else f"should not have passed ({self.kind})"
        if self.threshold is not None and self.kind not in LIMIT_THRESHOLDS:
            passed = score >= self.threshold
        return Result(self.index, self.type, PASS if passed else FAIL, score, self.weight, self.metric, reason)

    def _evaluate_set(self, subject: Subject) -> Result:
        children = [child.evaluate(subject) for child in self.children]
        outcome, score, reason = combine(children, self.threshold)
        return Result(self.index, self.type, outcome, score, self.weight, self.metric, reason, children)


def combine(results: list[Result], threshold: float | None = None) -> tuple[str, float, str]:
    """Several results as one: the weighted mean score of those not in error; pass when every one
    passed (or, with a threshold, when the score reaches it); error when all are errors."""
    if any(r.outcome == PENDING for r in results):
        return (PENDING, 0.0, "waiting for a judge")
    counted = [r for r in results if r.outcome != ERROR]
    if not counted:
        return (ERROR, 0.0, results[0].reason if results else "nothing to check")
    total = sum(r.weight for r in counted)
    score = sum(r.score * r.weight for r in counted) / total if total else float(all(r.outcome == PASS for r in counted))
    passed = score >= threshold if threshold is not None else all(r.outcome == PASS for r in counted)
    first = next((r for r in counted if r.outcome == FAIL), None)
    reason = "" if passed else (f"#{first.index} {first.type}: {first.reason}" if first else f"score {score:.2f}")
    return (PASS if passed else FAIL, score, reason)


def _number(spec: dict[str, Any], key: str, problems: dict[str, list[str]], where: str, *, low: float = 0.0,
            high: float | None = None) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    try:
        number = float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        problems[f"{where}.{key}"] = [f"“{value}” is not a number."]
        return None
    if number < low or (high is not None and number > high):
        problems[f"{where}.{key}"] = [f"Must be from {low:g} to {high:g}." if high is not None else f"Must be {low:g} or more."]
    return number


_VALUE_RULES: dict[str, Callable[[Any], str | None]] = {
    "equals": lambda v: None if v is not None else "Give the value to compare with.",
    "contains": lambda v: None if isinstance(v, str) and v else "Give a non-empty string.",
    "icontains": lambda v: None if isinstance(v, str) and v else "Give a non-empty string.",
    "starts-with": lambda v: None if isinstance(v, str) and v else "Give a non-empty string.",
    "regex": _regex_problem,
    "levenshtein": lambda v: None if isinstance(v, str) else "Give the string to compare with.",
    "finish-reason": lambda v: None if isinstance(v, str) and v else "Give a finish reason (stop, length, ...).",
}
for _kind in ("contains-any", "contains-all", "icontains-any", "icontains-all"):
    _VALUE_RULES[_kind] = lambda v: None if (isinstance(v, list) and v and all(isinstance(x, str) for x in v)) \
        else "Give a non-empty list of strings."


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _value_problem(kind: str, spec: dict[str, Any]) -> str | None:
    value = spec.get("value")
    if _is_template(value) and kind not in ("is-json", "contains-json", "word-count"):
        try:
            check_syntax(value)
        except TemplateProblem as exc:
            return f"The value's template does not parse: {exc}"
        return None
    if kind in ("is-json", "contains-json"):
        return None if value is None else _schema_problem(value)
    if kind == "word-count":
        if isinstance(value, int) and value >= 0:
            return None
        if isinstance(value, dict) and set(value) <= {"min", "max"} and value and all(
                isinstance(v, int) and v >= 0 for v in value.values()):
            return None
        return 'Give a number of words, or {"min": n, "max": m}.'
    if kind in ("latency", "cost"):
        return None if "threshold" in spec else f"A {kind} check needs a threshold."
    if kind == "llm-rubric":
        return None if isinstance(value, str) and value.strip() else "Give the rubric the judge applies."
    if kind == "factuality":
        return None if value is None or isinstance(value, str) else "Give the reference answer (or leave it out to use {{ expected }})."
    rule = _VALUE_RULES.get(kind)
    return rule(value) if rule else None


def _path(spec: dict[str, Any], where: str, problems: dict[str, list[str]]) -> list[str | int] | None:
    if spec.get("path") is None:
        return None
    try:
        return _parse_path(str(spec["path"]))
    except ValueError as exc:
        problems[f"{where}.path"] = [f"Not a path like items[0].name: {exc}."]
        return None


def _set_children(spec: dict[str, Any], index: str, where: str, depth: int, problems: dict[str, list[str]]
                  ) -> list[Check]:
    inner = spec.get("assert")
    if depth >= MAX_DEPTH:
        problems[f"{where}.assert"] = [f"Sets nest at most {MAX_DEPTH} deep."]
    elif not isinstance(inner, list) or not inner:
        problems[f"{where}.assert"] = ["An assert-set has a non-empty list of assertions in `assert`."]
    else:
        return [c for i, s in enumerate(inner)
                if (c := _compile_one(s, f"{index}.{i + 1}", f"{where}.assert[{i}]", depth + 1, problems))]
    return []


def _compile_one(spec: Any, index: str, where: str, depth: int, problems: dict[str, list[str]]) -> Check | None:
    if not isinstance(spec, dict):
        problems[where] = ["An assertion is an object with a type."]
        return None
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        problems[f"{where}.{unknown[0]}"] = [f"Unknown field; an assertion has: {', '.join(sorted(SPEC_KEYS))}."]
    written = spec.get("type")
    negate = isinstance(written, str) and written.startswith("not-")
    kind = written[4:] if negate else written
    if kind not in TYPES or (negate and kind == "assert-set"):
        problems[f"{where}.type"] = [f"Unknown assertion type “{written}”; the types are: {', '.join(TYPES)} "
                                     "(each but assert-set may start with not-)."]
        return None
    weight = _number(spec, "weight", problems, where)
    threshold = _number(spec, "threshold", problems, where, high=None if kind in LIMIT_THRESHOLDS else 1.0)
    metric = spec.get("metric") or ""
    if not isinstance(metric, str) or len(metric) > 100:
        problems[f"{where}.metric"] = ["A metric is a name of at most 100 characters."]
    path = _path(spec, where, problems)
    step = spec.get("step")
    if step is not None and not isinstance(step, str):
        problems[f"{where}.step"] = ["Name a step by its output key."]
    children: list[Check] = []
    if kind == "assert-set":
        children = _set_children(spec, index, where, depth, problems)
    else:
        problem = _value_problem(kind, spec)
        if problem:
            problems[f"{where}.value" if kind not in ("latency", "cost") else f"{where}.threshold"] = [problem]
    value = spec.get("value")
    if kind == "factuality" and value is None:
        value = "{{ expected }}"
    judge = spec.get("judge")
    if judge is not None and (kind not in JUDGE_TYPES or not isinstance(judge, str) or not judge.strip()):
        problems[f"{where}.judge"] = ["Only llm-rubric and factuality have a judge: the name of a workflow."]
    template = value if _is_template(value) and kind != "regex" else None
    only = ONE_VARIABLE.match(template) if template is not None else None
    return Check(index=index, type=written, kind=kind, negate=negate, spec=spec,
                 weight=1.0 if weight is None else weight, metric=metric if isinstance(metric, str) else "",
                 threshold=threshold, step=step if isinstance(step, str) else None, path=path,
                 value_template=template, variable=only.group(1) if only else None, children=children)


def compile_assertions(specs: Any, *, field_name: str = "assertions", index_prefix: str = "") -> list[Check]:
    """The checks of a list of specs; ValidationError keyed by field (`assertions[2].value`) otherwise.
    Results are numbered "1", "2", "2.1" ... after `index_prefix` ("row." for a case's own)."""
    if specs in (None, ""):
        return []
    if not isinstance(specs, list):
        raise ValidationError({field_name: ["A list of assertions."]})
    if len(specs) > MAX_ASSERTIONS:
        raise ValidationError({field_name: [f"At most {MAX_ASSERTIONS} assertions."]})
    problems: dict[str, list[str]] = {}
    checks = [c for i, s in enumerate(specs)
              if (c := _compile_one(s, f"{index_prefix}{i + 1}", f"{field_name}[{i}]", 1, problems))]
    if problems:
        raise ValidationError(problems)
    return checks


@dataclass
class Verdict:
    """A subject's outcome over all its checks, and each check's result."""

    outcome: str
    score: float
    reason: str
    results: list[Result]


def metric_counts(results: list[dict[str, Any]], into: dict[str, dict[str, float]], sign: int = 1) -> None:
    """Add (sign=-1: take away) the outcomes of a subject's results (Result.as_json, sets included) to
    the per-metric counters `into`: {"metric": {"passed", "failed", "errors", "score_sum"}}."""
    for result in results:
        if result.get("metric"):
            counts = into.setdefault(result["metric"], {"passed": 0, "failed": 0, "errors": 0, "score_sum": 0.0})
            key = {PASS: "passed", FAIL: "failed", ERROR: "errors"}.get(result["outcome"])
            if key is not None:
                counts[key] += sign
                if key != "errors":
                    counts["score_sum"] = round(counts["score_sum"] + sign * result["score"], 6)
        metric_counts(result.get("children") or [], into, sign)


def flatten(checks: list[Check]) -> Iterator[Check]:
    for check in checks:
        yield check
        yield from flatten(check.children)


def judge_checks(checks: list[Check]) -> list[Check]:
    return [c for c in flatten(checks) if c.kind in JUDGE_TYPES]


def evaluate(checks: list[Check], subject: Subject) -> Verdict:
    results = [check.evaluate(subject) for check in checks]
    outcome, score, reason = combine(results)
    return Verdict(outcome, score, reason, results)
