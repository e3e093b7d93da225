"""Prompt templates: Jinja2's sandbox with StrictUndefined, so a missing variable is an error.

The sandbox refuses attribute tricks ({{ ''.__class__ }}); on top of it, a template can neither
exhaust memory (no value or output longer than MAX_RENDERED_CHARS) nor CPU (a render that takes
longer than MAX_RENDER_SECONDS is stopped at its next loop step, call or output chunk).
"""
from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Iterable, Iterator
from functools import cache, lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Namespace
from jinja2.sandbox import SandboxedEnvironment

# Caps so that a template cannot exhaust memory or CPU.
MAX_RENDERED_CHARS = 1_000_000
MAX_RENDER_SECONDS = 2.0
# Loops are checked against the deadline once per this many items.
_CHECK_EVERY = 256
# A width in a format spec ("{:99999999}", "%99999999s") that would pad beyond the cap.
_HUGE_WIDTH = re.compile(r"\d{7,}")

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("template_deadline", default=None)


class TemplateProblem(Exception):
    """A template that does not parse, or a render that cannot complete. The message says why."""


class _TooSlow(Exception):
    pass


def _check_deadline() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise _TooSlow


def _too_big(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple | dict) and len(value) > MAX_RENDERED_CHARS


def _guarded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """What every {% for %} loops over: the deadline is checked as it goes."""
    for count, item in enumerate(iterable):
        if count % _CHECK_EVERY == 0:
            _check_deadline()
        yield item


class _CappedNamespace(Namespace):
    # {% set ns.text = ns.text ~ ns.text %} in a loop doubles the text each time.
    def __setitem__(self, name: str, value: Any) -> None:
        if _too_big(value):
            raise SecurityError("the template would produce too much text")
        super().__setitem__(name, value)


class _Environment(SandboxedEnvironment):
    # range() in the sandbox is already capped; cap repetition, powers and %-formatting too.
    intercepted_binops = frozenset(["*", "**", "%"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_deadline()
        if operator == "*":
            sized, count = (left, right) if isinstance(left, str | list | tuple) else (right, left)
            if isinstance(sized, str | list | tuple) and isinstance(count, int) and len(sized) * count > MAX_RENDERED_CHARS:
                raise SecurityError("the template would produce too much text")
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right * abs(left).bit_length() > 4096:
                raise SecurityError("the power is too large")
        elif operator == "%" and isinstance(left, str) and _HUGE_WIDTH.search(left):
            raise SecurityError("the format width is too large")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        arguments = [*args, *kwargs.values()]
        if any(_too_big(a) for a in arguments):
            raise SecurityError("an argument is too large")
        if any(isinstance(a, int) and a > MAX_RENDERED_CHARS for a in arguments):
            # "x".ljust(10**9), "{:{w}}".format(1, w=10**9): padding that would exhaust memory.
            raise SecurityError("an argument is too large")
        result = super().call(__context, __obj, *args, **kwargs)
        if _too_big(result):
            raise SecurityError("the template would produce too much text")
        return result

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None and _HUGE_WIDTH.search(value.__self__):
            def refuse(*args: Any, **kwargs: Any) -> str:
                raise SecurityError("the format width is too large")
            return refuse
        return wrapped

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, "_guarded_iter", [], [], None, None, lineno=loop.lineno)
        return tree


def _capped_filter(original: Any) -> Any:
    # |center(10**9), |indent(10**9), |format with a huge width: refused before the allocation.
    def capped(*args: Any, **kwargs: Any) -> Any:
        arguments = [*args[1:], *kwargs.values()]
        if any(isinstance(a, int) and a > MAX_RENDERED_CHARS for a in arguments):
            raise SecurityError("a filter argument is too large")
        if args and isinstance(args[0], str) and original.__name__ == "do_format" and _HUGE_WIDTH.search(args[0]):
            raise SecurityError("the format width is too large")
        result = original(*args, **kwargs)
        if _too_big(result):
            raise SecurityError("the template would produce too much text")
        return result

    for attribute in ("jinja_pass_arg",):
        if hasattr(original, attribute):
            setattr(capped, attribute, getattr(original, attribute))
    capped.__name__ = original.__name__
    return capped


@cache
def environment() -> SandboxedEnvironment:
    env = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    for name in ("center", "indent", "format", "wordwrap", "truncate", "replace", "join", "string"):
        env.filters[name] = _capped_filter(env.filters[name])
    env.filters["_guarded_iter"] = _guarded_iter
    env.globals["namespace"] = _CappedNamespace
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


@cache
def _compiled(source: str) -> Any:
    return environment().from_string(source)


def render(source: str, variables: dict[str, Any]) -> str:
    token = _deadline.set(time.monotonic() + MAX_RENDER_SECONDS)
    try:
        try:
            template = _compiled(source)
        except (TemplateSyntaxError, RecursionError) as exc:
            raise _syntax_problem(exc) from exc
        return _render_capped(template, variables)
    finally:
        _deadline.reset(token)


def _render_capped(template: Any, variables: dict[str, Any]) -> str:
    parts: list[str] = []
    length = 0
    try:
        for part in template.generate(variables):
            length += len(part)
            if length > MAX_RENDERED_CHARS:
                raise TemplateProblem(f"the rendered text is longer than {MAX_RENDERED_CHARS} characters")
            _check_deadline()
            parts.append(part)
    except TemplateProblem:
        raise
    except _TooSlow as exc:
        raise TemplateProblem(f"the template took longer than {MAX_RENDER_SECONDS:g} s to render") from exc
    except UndefinedError as exc:
        raise TemplateProblem(f"missing variable: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateProblem(f"refused by the sandbox: {exc}") from exc
    except RecursionError as exc:
        raise TemplateProblem("the template recurses too deeply") from exc
    except MemoryError as exc:
        raise TemplateProblem("the template needs too much memory") from exc
    except Exception as exc:  # any other render error is the template's, reported as such
        raise TemplateProblem(f"{type(exc).__name__}: {exc}") from exc
    return "".join(parts)
