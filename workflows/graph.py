"""The graph a workflow's steps make, derived from the variables each one reads (issue 22).

A workflow stays an ordered list of steps. A step needs the steps whose output it reads (in its
blocks, its `when` or its `for_each`; `previous` is the step listed directly above), and may only
read steps listed above it, so the graph has no cycles by construction. The engine starts a step
as soon as every step it needs has ended; steps that need nothing of each other run side by side.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from blocks import templating

# `for_each`: a variable, then optional .field or .0 parts (claims.items, extract.claims.0.sources).
FOR_EACH_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+)*)$")
# What a rendered `when` says to skip the step (compared lower-cased, stripped).
FALSE_WORDS = frozenset({"", "false", "0", "none", "no", "off", "null"})


def when_source(when: str) -> str:
    """A `when` as a template: a bare expression (language != "en") is wrapped in {{ }}."""
    text = when.strip()
    return text if "{{" in text or "{%" in text else "{{ " + text + " }}"


def when_holds(rendered: str) -> bool:
    return rendered.strip().lower() not in FALSE_WORDS


@dataclass(frozen=True)
class ForEach:
    root: str
    path: tuple[str, ...]


def for_each_parse(text: str) -> ForEach | None:
    match = FOR_EACH_RE.match(text.strip())
    if match is None:
        return None
    return ForEach(match.group(1), tuple(part for part in match.group(2).split(".") if part))


class NotAList(Exception):
    """A `for_each` that does not name a list at run time; the message names the value."""


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def for_each_items(text: str, variables: dict[str, Any]) -> list[Any]:
    """The list a `for_each` names among the run's variables. A string that holds a JSON list (an
    input, a step's text answer) is read as that list."""
    spec = for_each_parse(text)
    if spec is None:
        raise NotAList(f"for_each '{text}' is not a variable name or a dotted path")
    if spec.root not in variables:
        raise NotAList(f"for_each '{text}': '{spec.root}' is not known")
    value = variables[spec.root]
    walked = spec.root
    for part in spec.path:
        value = _as_json(value)
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise NotAList(f"for_each '{text}': {walked} has no '{part}' (it is {_short(value)})")
        walked += "." + part
    value = _as_json(value)
    if not isinstance(value, list):
        raise NotAList(f"for_each '{text}' is not a list: {_short(value)}")
    return value


def _as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def step_reads(*, blocks: list[dict[str, str]], when: str, for_each: str, item_as: str) -> dict[str, set[str]]:
    """The variables a step reads, by where: its blocks (without the map's item), `when`, `for_each`.
    A template that does not parse reads nothing (validation reports it)."""
    reads: dict[str, set[str]] = {"blocks": set(), "when": set(), "for_each": set()}
    for spec in blocks:
        try:
            reads["blocks"] |= templating.variables_of(spec["content"])
        except templating.TemplateProblem:
            continue
    if for_each:
        reads["blocks"].discard(item_as)
        parsed = for_each_parse(for_each)
        if parsed is not None:
            reads["for_each"].add(parsed.root)
    if when.strip():
        try:
            reads["when"] = set(templating.variables_of(when_source(when)))
        except templating.TemplateProblem:
            pass
    return reads


def step_needs(index: int, reads: set[str], earlier: list[str]) -> list[int]:
    """Indexes of the earlier steps a step reads (`earlier`: their output keys, in order)."""
    needs = {position for position, key in enumerate(earlier) if key in reads}
    if "previous" in reads and index > 0:
        needs.add(index - 1)
    return sorted(needs)


def is_chain(steps: list[dict[str, Any]]) -> bool:
    """Whether a snapshot's steps can only run one after the other, as a plain chain: every step
    needs the one above it, and none is conditional or a map. Snapshots from before issue 22 have
    no `needs`: they are chains."""
    for index, step in enumerate(steps):
        if step.get("when") or step.get("for_each"):
            return False
        needs = step.get("needs")
        if index > 0 and needs is not None and index - 1 not in needs:
            return False
    return True


def levels(needs: list[list[int]]) -> list[int]:
    """Each step's depth in the graph: 0 for a step that needs nothing, else one more than the
    deepest step it needs. Steps of one level can run side by side."""
    depth: list[int] = []
    for index, wanted in enumerate(needs):
        depth.append(1 + max((depth[n] for n in wanted if n < index), default=-1))
    return depth
