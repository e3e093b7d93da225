"""Prompt templates: Jinja2's sandbox with StrictUndefined, so a missing variable is an error."""
from functools import cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

# Caps so that a template cannot exhaust memory: rendered text longer than this is refused.
MAX_RENDERED_CHARS = 1_000_000


class TemplateProblem(Exception):
    """A template that does not parse, or a render that cannot complete. The message says why."""


class _Environment(SandboxedEnvironment):
    # range() in the sandbox is already capped; cap string repetition too ("x" * 10**9).
    intercepted_binops = frozenset(["*"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and (isinstance(left, str) or isinstance(right, str)):
            count = right if isinstance(left, str) else left
            text = left if isinstance(left, str) else right
            if isinstance(count, int) and len(text) * count > MAX_RENDERED_CHARS:
                raise SecurityError("the template would produce too much text")
        return super().call_binop(context, operator, left, right)


@cache
def environment() -> SandboxedEnvironment:
    return _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def check_syntax(source: str) -> None:
    """Raise TemplateProblem with the parser's message and line if the template does not parse."""
    try:
        environment().parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"line {exc.lineno}: {exc.message}") from exc


@cache
def variables_of(source: str) -> frozenset[str]:
    """The top-level names a template reads ({{ outline.title }} reads 'outline')."""
    try:
        return frozenset(meta.find_undeclared_variables(environment().parse(source)))
    except TemplateSyntaxError:
        return frozenset()


@cache
def _compiled(source: str) -> Any:
    return environment().from_string(source)


def render(source: str, variables: dict[str, Any]) -> str:
    try:
        text = _compiled(source).render(variables)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"line {exc.lineno}: {exc.message}") from exc
    except UndefinedError as exc:
        raise TemplateProblem(f"missing variable: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateProblem(f"refused by the sandbox: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any other render error is the template's, reported as such
        raise TemplateProblem(f"{type(exc).__name__}: {exc}") from exc
    if len(text) > MAX_RENDERED_CHARS:
        raise TemplateProblem(f"the rendered text is longer than {MAX_RENDERED_CHARS} characters")
    return text
