"""Prompt templates: Jinja2's sandbox with StrictUndefined, so a missing variable is an error.

The sandbox refuses attribute tricks ({{ ''.__class__ }}); on top of it, a render has a budget:
no string or list it builds longer than MAX_RENDERED_CHARS (checked before the allocation where
the size can be known: `*`, `+`, `~`, `%`, join, format, replace, padding), no more than
MAX_TOTAL_CHARS built in all, and no longer than MAX_RENDER_SECONDS (checked at every loop step,
call, operator, filter and output chunk). Where a render runs (inline or in a bounded worker
process) is decided by blocks.render_workers; this module imports nothing from Django.
"""
from __future__ import annotations

import contextvars
import functools
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Namespace
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

# Defaults of the settings TEMPLATE_MAX_CHARS, TEMPLATE_MAX_TOTAL_CHARS and TEMPLATE_MAX_SECONDS.
MAX_RENDERED_CHARS = 1_000_000
MAX_TOTAL_CHARS = 20_000_000
MAX_RENDER_SECONDS = 2.0
# Loops are checked against the deadline once per this many items.
_CHECK_EVERY = 256
# Digit runs in a format string: the widest padding or precision it may ask for.
_DIGITS = re.compile(r"\d+")
# Filters that pad or wrap to a width given as an argument.
_WIDTH_FILTERS = frozenset({"center", "indent", "format", "wordwrap", "truncate", "filesizeformat"})
# lipsum() is generated in pure Python without a check: bounded instead.
_LIPSUM_MAX_PARAGRAPHS = 20
_LIPSUM_MAX_WORDS = 200


@dataclass(frozen=True)
class Limits:
    """One render's budget; the setting each field comes from is named in the error it raises."""

    max_chars: int = MAX_RENDERED_CHARS
    max_total_chars: int = MAX_TOTAL_CHARS
    max_seconds: float = MAX_RENDER_SECONDS

    @classmethod
    def defaults(cls) -> Limits:
        # Read at call time so that a test (or settings) changing the module constants is seen.
        return cls(MAX_RENDERED_CHARS, MAX_TOTAL_CHARS, MAX_RENDER_SECONDS)


@dataclass
class _Budget:
    limits: Limits
    deadline: float
    built: int = field(default=0)


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


class TemplateProblem(Exception):
    """A template that does not parse, or a render that cannot complete. The message says why."""

    def __init__(self, message: str, *, index: int = 0) -> None:
        super().__init__(message)
        self.index = index  # which of the sources given to render_many


class _TooSlow(Exception):
    pass


def _current() -> _Budget:
    budget = _budget.get()
    return budget if budget is not None else _Budget(Limits.defaults(), float("inf"))


def _check_deadline() -> None:
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.deadline:
        raise _TooSlow


def _refuse_size(size: int) -> None:
    """Refuse, before building it, a value of `size` characters (or items) over the cap."""
    limit = _current().limits.max_chars
    if size > limit:
        raise SecurityError(f"the template would build a value longer than {limit} characters (TEMPLATE_MAX_CHARS)")


def _account(value: Any) -> Any:
    """Count a value the template built against the budget; return it unchanged."""
    if isinstance(value, str | bytes | list | tuple | dict):
        _refuse_size(len(value))
        budget = _current()
        budget.built += len(value)
        if budget.built > budget.limits.max_total_chars:
            raise SecurityError(f"the template built more than {budget.limits.max_total_chars} characters in all "
                                "(TEMPLATE_MAX_TOTAL_CHARS)")
    return value


def _text_size(value: Any, depth: int = 0) -> int:
    """An upper bound of len(str(value)) without building it; stops counting past the cap."""
    if isinstance(value, str | bytes):
        return len(value) + 3
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if not isinstance(value, list | tuple | set | frozenset) or depth > 20:
        return 64
    limit = _current().limits.max_chars
    total = 2
    for item in value:
        total += _text_size(item, depth + 1) + 2
        if total > limit:
            break
    return total


def _safe_str(value: Any) -> str:
    if isinstance(value, list | tuple | dict | set | frozenset):
        _refuse_size(_text_size(value))
    return str(value)


def _finalize(value: Any) -> Any:
    # Every {{ expression }} goes through here before str(): a list of big strings is refused unbuilt.
    _check_deadline()
    if isinstance(value, list | tuple | dict | set | frozenset):
        _refuse_size(_text_size(value))
    return value


def _concat(parts: Iterable[Any]) -> str:
    """What `~` compiles to: sizes are added up before the text is built."""
    texts = [_safe_str(part) for part in parts]
    _refuse_size(sum(len(text) for text in texts))
    return _account("".join(texts))


def _capped_join(parts: Iterable[str]) -> str:
    """Environment.concat: joins the buffer of {% set %}...{% endset %}, macros and {% filter %}."""
    texts = parts if isinstance(parts, list) else list(parts)
    _refuse_size(sum(len(text) for text in texts))
    return _account("".join(texts))


def _format_size(template: str, arguments: Iterable[Any]) -> int:
    """An upper bound of the length of template % args or template.format(*args)."""
    specs = template.count("%") + template.count("{")
    widest_argument = max((_text_size(a) for a in arguments), default=0)
    widest_spec = max((int(digits) for digits in _DIGITS.findall(template) if len(digits) < 12), default=0)
    if any(len(digits) >= 12 for digits in _DIGITS.findall(template)):
        widest_spec = 10**12
    return len(template) + specs * (widest_argument + widest_spec)


def _replace_size(text: str, old: str, new: str, count: int = -1) -> int:
    hits = len(text) + 1 if old == "" else text.count(old)
    if count is not None and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def _guarded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """What every {% for %} loops over: the deadline is checked as it goes."""
    for count, item in enumerate(iterable):
        if count % _CHECK_EVERY == 0:
            _check_deadline()
        yield item


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if n > _LIPSUM_MAX_PARAGRAPHS or max > _LIPSUM_MAX_WORDS or min > _LIPSUM_MAX_WORDS:
        raise SecurityError(f"lipsum() is limited to n={_LIPSUM_MAX_PARAGRAPHS} paragraphs of max={_LIPSUM_MAX_WORDS} words")
    return generate_lorem_ipsum(n, html, min, max)


class _CappedNamespace(Namespace):
    # {% set ns.text = ns.text ~ ns.text %} in a loop doubles the text each time.
    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, _account(value))


class _Guards(NodeTransformer):
    """Rewrites a parsed template so that loops check the deadline and `~` checks sizes."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_guarded_iter", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(parts, "_concat", [], [], None, None, lineno=node.lineno)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        sized, count = (left, right) if isinstance(left, str | list | tuple) else (right, left)
        if isinstance(sized, str | list | tuple) and isinstance(count, int):
            _refuse_size(len(sized) * count)
    elif operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        _refuse_size(len(left) + len(right))
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right * abs(left).bit_length() > 4096:
            raise SecurityError("the power is too large")
    elif operator == "%" and isinstance(left, str):
        _refuse_size(_format_size(left, right if isinstance(right, tuple | list) else [right]))


def _check_method(method: Any, args: tuple[Any, ...]) -> None:
    """Refuse str methods whose result would be over the cap, before they build it."""
    text = getattr(method, "__self__", None)
    if not isinstance(text, str):
        return
    name = getattr(method, "__name__", "")
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _refuse_size(_replace_size(text, *args[:3]))
    elif name == "join" and args and isinstance(args[0], list | tuple):
        _refuse_size(_text_size(args[0]) + len(text) * len(args[0]))
    elif name == "expandtabs":
        _refuse_size(len(text) * (args[0] if args and isinstance(args[0], int) else 8))


def _check_arguments(arguments: list[Any]) -> None:
    if any(isinstance(a, str | bytes | list | tuple | dict) and len(a) > _current().limits.max_chars for a in arguments):
        raise SecurityError("an argument is too large")
    if any(isinstance(a, int) and not isinstance(a, bool) and a > _current().limits.max_chars for a in arguments):
        # "x".ljust(10**9), "{:{w}}".format(1, w=10**9): padding that would exhaust memory.
        _refuse_size(max(a for a in arguments if isinstance(a, int)))


class _Environment(SandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**", "%", "+"])
    concat = staticmethod(_capped_join)  # type: ignore[assignment]

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_deadline()
        _check_binop(operator, left, right)
        return _account(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        _check_arguments([*args, *kwargs.values()])
        _check_method(__obj, args)
        result = _account(super().call(__context, __obj, *args, **kwargs))
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, list | dict):
            _refuse_size(len(owner))  # list.append/extend in a loop grows one list without a new value
        return result

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _refuse_size(_format_size(template, [*args, *kwargs.values()]))
            return _account(wrapped(*args, **kwargs))
        return checked

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Guards().visit(super()._parse(source, name, filename))


def _capped_filter(name: str, original: Any) -> Any:
    """Every filter checks the deadline and counts what it returns; some check their arguments first."""
    skip = 1 if getattr(original, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(original)
    def capped(*args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        value, arguments = (args[skip] if len(args) > skip else None), [*args[skip + 1:], *kwargs.values()]
        if name in _WIDTH_FILTERS:
            _check_arguments(arguments)
        _check_filter_size(name, value, arguments)
        return _account(original(*args, **kwargs))
    return capped


def _check_filter_size(name: str, value: Any, arguments: list[Any]) -> None:
    if name == "format" and isinstance(value, str):
        _refuse_size(_format_size(value, arguments))
    elif name == "replace" and isinstance(value, str) and len(arguments) >= 2:
        _refuse_size(_replace_size(value, str(arguments[0]), str(arguments[1]),
                                   arguments[2] if len(arguments) > 2 and isinstance(arguments[2], int) else -1))
    elif name == "join" and isinstance(value, list | tuple):
        separator = str(arguments[0]) if arguments else ""
        _refuse_size(_text_size(value) + len(separator) * len(value))
    elif name == "center" and isinstance(value, str) and arguments and isinstance(arguments[0], int):
        _refuse_size(max(len(value), arguments[0]))


@cache
def environment() -> SandboxedEnvironment:
    env = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, finalize=_finalize)
    for name, original in list(env.filters.items()):
        env.filters[name] = _capped_filter(name, original)
    env.filters["_guarded_iter"] = _guarded_iter
    env.filters["_concat"] = _concat
    env.globals["namespace"] = _CappedNamespace
    env.globals["lipsum"] = _lipsum
    return env


def _syntax_problem(exc: Exception) -> TemplateProblem:
    if isinstance(exc, TemplateSyntaxError):
        return TemplateProblem(f"line {exc.lineno}: {exc.message}")
    return TemplateProblem("the template is nested too deeply")


def check_syntax(source: str) -> None:
    """Raise TemplateProblem with the parser's message and line if the template does not parse."""
    problem = _parse_problem(source)
    if problem is not None:
        raise TemplateProblem(problem)


@lru_cache(maxsize=4096)
def _parse_problem(source: str) -> str | None:
    # Every run start validates every step's blocks: parse each distinct text once.
    try:
        environment().parse(source)
    except (TemplateSyntaxError, RecursionError) as exc:
        return str(_syntax_problem(exc))
    return None


@cache
def variables_of(source: str) -> frozenset[str]:
    """The top-level names a template reads ({{ outline.title }} reads 'outline')."""
    try:
        return frozenset(meta.find_undeclared_variables(environment().parse(source)))
    except (TemplateSyntaxError, RecursionError):
        return frozenset()


# What a template may contain and still be rendered inline: no loop, call, operator or set, so
# its cost is linear in its text and its variables.
_PLAIN_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.Getattr,
                nodes.Getitem, nodes.If, nodes.Not, nodes.And, nodes.Or, nodes.Compare, nodes.Operand,
                nodes.Test, nodes.CondExpr, nodes.Filter, nodes.List)
_PLAIN_FILTERS = frozenset({"_concat", "trim", "upper", "lower", "capitalize", "title", "default", "d", "tojson",
                            "length", "count", "string", "int", "float", "abs", "first", "last", "e", "escape",
                            "join", "safe", "striptags"})
_PLAIN_TESTS = frozenset({"defined", "undefined", "none", "string", "number", "mapping", "sequence", "true",
                          "false", "boolean", "integer", "float", "lower", "upper", "eq", "ne", "in"})


@lru_cache(maxsize=4096)
def is_plain(source: str) -> bool:
    """True when the template's cost is linear in its text and variables (safe to render anywhere)."""
    try:
        tree = environment().parse(source)
    except (TemplateSyntaxError, RecursionError):
        return True  # rendering it only reports the syntax error
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _PLAIN_NODES):
            return False
        if isinstance(node, nodes.Filter) and node.name not in _PLAIN_FILTERS:
            return False
        if isinstance(node, nodes.Test) and node.name not in _PLAIN_TESTS:
            return False
        if isinstance(node, nodes.Const) and isinstance(node.value, int) and abs(node.value) > 1000:
            return False
    return True


@cache
def _compiled(source: str) -> Any:
    return environment().from_string(source)


def render(source: str, variables: dict[str, Any], limits: Limits | None = None) -> str:
    """Render one template in this thread, within `limits` (the module's defaults if not given)."""
    return render_many([source], variables, limits)[0]


def render_many(sources: list[str], variables: dict[str, Any], limits: Limits | None = None) -> list[str]:
    """Render several templates under one budget (one step or one preview); the problem names its index."""
    limits = limits or Limits.defaults()
    token = _budget.set(_Budget(limits, time.monotonic() + limits.max_seconds))
    try:
        return [_render_one(index, source, variables, limits) for index, source in enumerate(sources)]
    finally:
        _budget.reset(token)


def _render_one(index: int, source: str, variables: dict[str, Any], limits: Limits) -> str:
    try:
        template = _compiled(source)
    except (TemplateSyntaxError, RecursionError) as exc:
        problem = _syntax_problem(exc)
        raise TemplateProblem(str(problem), index=index) from exc
    try:
        return _render_capped(template, variables, limits)
    except TemplateProblem as exc:
        raise TemplateProblem(str(exc), index=index) from exc.__cause__


def _render_capped(template: Any, variables: dict[str, Any], limits: Limits) -> str:
    parts: list[str] = []
    length = 0
    try:
        for part in template.generate(variables):
            length += len(part)
            if length > limits.max_chars:
                raise TemplateProblem(f"the rendered text is longer than {limits.max_chars} characters "
                                      "(TEMPLATE_MAX_CHARS)")
            _check_deadline()
            parts.append(part)
    except TemplateProblem:
        raise
    except _TooSlow as exc:
        raise TemplateProblem(too_slow_message(limits.max_seconds)) from exc
    except UndefinedError as exc:
        raise TemplateProblem(f"missing variable: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateProblem(f"refused by the sandbox: {exc}") from exc
    except RecursionError as exc:
        raise TemplateProblem("the template recurses too deeply") from exc
    except MemoryError as exc:
        raise TemplateProblem("the template needs too much memory (TEMPLATE_MAX_MEMORY_MB)") from exc
    except Exception as exc:  # any other render error is the template's, reported as such
        raise TemplateProblem(f"{type(exc).__name__}: {exc}") from exc
    return "".join(parts)


def too_slow_message(seconds: float) -> str:
    return f"the template took longer than {seconds:g} s to render (TEMPLATE_MAX_SECONDS)"
