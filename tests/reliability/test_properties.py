"""Hypothesis: any template text is rendered or refused with a message; the sandbox holds; any
workflow made of arbitrary templates and inputs is either runnable or refused with messages."""
import itertools

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocks import templating
from llm.models import Endpoint
from runs.models import Run
from runs.services import run_start
from tests.factories import make_block, make_endpoint, make_payload, make_workflow
from tests.reliability.conftest import soak_or

EXAMPLES = soak_or(5000, 150)
FRAGMENTS = [
    "{{ ", " }}", "{% ", " %}", "{# ", " #}", "for x in ", "range(", ")", "endfor", "if ", "endif", "set ", "=",
    "topic", "previous", "name", "x", "loop.index", "|", "upper", "join(',')", "center(", "'", '"', "~", "*", "**",
    "%", "9", "99999999", "[", "]", ".", "__class__", "__globals__", "cycler", "namespace(", "macro ", "endmacro",
    "\n", " ", "{{", "}}", "{%", "%}", "-", "+",
]
template_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=5)), max_size=30).map("".join),
)
variables = st.fixed_dictionaries({}, optional={
    "topic": st.text(max_size=50), "name": st.one_of(st.text(max_size=20), st.integers(), st.lists(st.integers(), max_size=5)),
    "previous": st.text(max_size=50)})
quick = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@quick
@given(source=template_text, values=variables)
def test_any_text_is_rendered_or_refused_with_a_message(source, values):
    try:
        text = templating.render(source, values)
    except templating.TemplateProblem as problem:
        assert str(problem).strip()
    else:
        assert isinstance(text, str) and len(text) <= templating.MAX_RENDERED_CHARS


@quick
@given(source=template_text)
def test_syntax_check_and_variables_never_fail_with_anything_but_a_template_problem(source):
    try:
        templating.check_syntax(source)
    except templating.TemplateProblem as problem:
        assert str(problem).startswith("line ") or "nested too deeply" in str(problem)
        assert templating.variables_of(source) == frozenset()
    else:
        assert all(name.isidentifier() for name in templating.variables_of(source))


ESCAPES = [
    "{{ ''.__class__ }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}", "{{ namespace.__init__.__globals__ }}", "{{ lipsum.__globals__ }}",
    "{{ range.__self__ }}", "{{ ().__class__.__bases__[0].__subclasses__() }}", "{{ x.__dict__ }}",
    "{{ ''.format.__globals__ }}", "{{ '{0.__class__}'.format('') }}", "{{ topic.__len__.__self__ }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_the_sandbox_refuses_attribute_tricks(source):
    # Refused, or (for a name the object does not have at all) reported missing: never rendered.
    with pytest.raises(templating.TemplateProblem, match=r"refused by the sandbox|has no attribute '__"):
        templating.render(source, {"x": object(), "topic": "t"})


@quick
@given(count=st.integers(min_value=0, max_value=2 * templating.MAX_RENDERED_CHARS))
def test_output_is_capped_however_the_text_is_built(count):
    sources = ["{{ 'ab' * n }}", "{{ ['ab'] * n }}", "{{ 'ab'|center(n) }}", "{% for i in range(n) %}ab{% endfor %}"]
    for source in sources:
        try:
            text = templating.render(source, {"n": count})
        except templating.TemplateProblem as problem:
            assert "too" in str(problem) or "longer" in str(problem) or "range" in str(problem)
        else:
            assert len(text) <= templating.MAX_RENDERED_CHARS


@pytest.mark.parametrize("source", [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "{% for c in s %}{% for d in s %}{% endfor %}{% endfor %}",
])
def test_a_render_that_would_run_for_hours_is_stopped_at_the_time_cap(monkeypatch, source):
    monkeypatch.setattr(templating, "MAX_RENDER_SECONDS", 0.2)
    with pytest.raises(templating.TemplateProblem, match=r"took longer than 0.2 s"):
        templating.render(source, {"s": "x" * 1_000_000})


@pytest.mark.parametrize("source", ["{{ 10 ** (10 ** 10) }}", "{{ '%999999999s' % 1 }}", "{{ 'x'.ljust(10**9) }}",
                                    "{{ '{:999999999}'.format(1) }}", "{{ 'x'|indent(10**9) }}",
                                    "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
                                    "{% endfor %}"])
def test_memory_bombs_are_refused_before_the_allocation(source):
    with pytest.raises(templating.TemplateProblem, match="refused by the sandbox"):
        templating.render(source, {})


_names = itertools.count()


@pytest.mark.django_db
@settings(max_examples=soak_or(500, 40), deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(contents=st.lists(template_text, min_size=1, max_size=3),
       inputs=st.dictionaries(st.text(max_size=10), st.one_of(st.text(max_size=20), st.integers(), st.none()), max_size=3))
def test_a_workflow_of_any_templates_and_inputs_is_started_or_refused_with_messages(contents, inputs):
    endpoint = Endpoint.objects.first() or make_endpoint()  # hypothesis examples share the test's transaction
    steps = []
    for index, content in enumerate(contents):
        name = f"n{next(_names)}"
        steps.append((f"step{index}", make_payload(name, endpoint, [("user", make_block(name, content))])))
    workflow = make_workflow(f"w{next(_names)}", steps)
    runs_before = Run.objects.count()
    try:
        run = run_start(workflow=workflow, inputs=inputs, user=None)
    except ValidationError as refusal:
        messages = [m for ms in refusal.message_dict.values() for m in ms]
        assert messages and all(isinstance(m, str) and m.strip() for m in messages)
        assert Run.objects.count() == runs_before
    else:
        assert run.status == "queued" and set(run.inputs) == {"topic"}
