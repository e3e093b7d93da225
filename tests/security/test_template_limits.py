"""The template sandbox's budget: what a template builds is capped before it is built, a render is
stopped at its time limit, and a hostile template never stalls the server (blocks/templating.py,
blocks/render_workers.py)."""
import asyncio
import json
import threading
import time
import tracemalloc
import urllib.request

import pytest
from asgiref.sync import sync_to_async
from rest_framework.authtoken.models import Token

from blocks import templating
from runs.engine import execute_run
from runs.models import Response, Run
from runs.services import run_start
from tests.factories import make_block, make_endpoint, make_payload, make_workflow
from tests.servers import api

BIG = "{% set a = 'x' * 1000000 %}"
# Each builds far more than TEMPLATE_MAX_CHARS from small pieces; none may allocate it first.
MEMORY_BOMBS = [
    BIG + "{% set a = a ~ a %}" * 10 + "{{ a|length }}",
    BIG + "{% set a = a + a %}" * 10 + "{{ a|length }}",
    BIG + "{{ a.replace('x', 'yyyyyyyyyy')|length }}",
    BIG + "{{ a|replace('x', 'yyyyyyyyyy')|length }}",
    BIG + "{{ ('{0}' * 100).format(a)|length }}",
    BIG + "{{ (('%s' * 100) % ((a,) * 100))|length }}",
    BIG + "{{ [a, a, a, a, a]|join|length }}",
    BIG + "{% set b %}{% for i in range(200) %}{{ a }}{% endfor %}{% endset %}{{ b|length }}",
    "{{ range(1000)|map('center', 999999)|list|length }}",
    "{% set l = [] %}{% for i in range(1000) %}{{ l.append('x' * 999999) }}{% endfor %}{{ l|length }}",
]


@pytest.mark.parametrize("source", MEMORY_BOMBS)
def test_text_built_from_small_pieces_is_refused_before_the_memory_is_used(source):
    tracemalloc.start()
    try:
        with pytest.raises(templating.TemplateProblem, match=r"TEMPLATE_MAX_(TOTAL_)?CHARS"):
            templating.render(source, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 60_000_000


def test_lipsum_is_bounded_instead_of_running_past_the_time_limit():
    started = time.monotonic()
    with pytest.raises(templating.TemplateProblem, match="lipsum"):
        templating.render("{{ lipsum(n=150000) }}", {})
    assert time.monotonic() - started < 0.5
    assert templating.render("{{ lipsum(2, false) }}", {}).count("\n\n") == 1


HOSTILE_LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}"


def _hostile_workflow(name: str):  # type: ignore[no-untyped-def]
    block = make_block(f"{name}-block", "Say hi." + HOSTILE_LOOP)
    payload = make_payload(f"{name}-payload", make_endpoint(name=f"{name}-endpoint"), [("user", block)])
    return make_workflow(name, [("answer", payload)])


@pytest.mark.django_db(transaction=True)
async def test_a_step_over_its_time_budget_fails_the_run_without_stalling_the_event_loop(settings):
    settings.TEMPLATE_MAX_SECONDS = 0.5
    run = await sync_to_async(lambda: run_start(workflow=_hostile_workflow("slow"), inputs={"topic": "t"}, user=None))()
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)

    ticking = asyncio.ensure_future(ticker())
    try:
        assert await execute_run(run.pk) == "failed"
    finally:
        ticking.cancel()
    response = await Response.objects.aget(run_id=run.pk, index=0)
    assert "block 'slow-block': the template took longer than 0.5 s to render (TEMPLATE_MAX_SECONDS)" in response.error
    assert max(lags) < 0.15, f"the event loop stalled for {max(lags):.3f} s"


def _get_ms(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=30) as answer:
        answer.read()
    return (time.monotonic() - started) * 1000


@pytest.mark.django_db(transaction=True)
def test_ten_hostile_templates_at_once_leave_healthz_fast(app_server, user):
    server = app_server(TEMPLATE_MAX_SECONDS="0.5", TEMPLATE_WORKERS="2")
    workflow = _hostile_workflow("hostile")
    payload_id = workflow.steps.get().payload_id
    token = Token.objects.create(user=user).key
    answers: list[tuple[int, dict]] = []

    def preview() -> None:
        answers.append(api(f"{server.url}/api/payloads/{payload_id}/preview/", token, "POST", {"variables": {}}))

    def start_run() -> None:
        answers.append(api(f"{server.url}/api/workflows/{workflow.pk}/runs/", token, "POST", {"inputs": {"topic": "t"}}))

    warm = [threading.Thread(target=preview) for _ in range(2)]  # both workers started: not what is measured
    for thread in warm:
        thread.start()
    for thread in warm:
        thread.join()
    answers.clear()
    hostile = [threading.Thread(target=target) for target in [preview, start_run] * 5]
    for thread in hostile:
        thread.start()
    latencies = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (any(t.is_alive() for t in hostile)
                                           or Run.objects.exclude(status="failed").exists()):
        latencies.append(_get_ms(f"{server.url}/healthz"))
    previews = [body for status, body in answers if "variables" in body]
    assert len(previews) == 5 and all("TEMPLATE_MAX_SECONDS" in json.dumps(body) for body in previews)
    runs = Run.objects.all()
    assert runs.count() == 5 and {run.status for run in runs} == {"failed"}
    assert all("TEMPLATE_MAX_SECONDS" in response.error for response in Response.objects.all())
    # p99, not the maximum: the moment the ten requests themselves are parsed is not the templates'.
    slowest = sorted(latencies)[-5:]
    p99 = sorted(latencies)[int(len(latencies) * 0.99)]
    assert len(latencies) >= 100 and p99 < 200, f"healthz p99 {p99:.0f} ms over {len(latencies)} requests: " + \
        f"slowest {[(latencies.index(x), round(x)) for x in slowest]}"
