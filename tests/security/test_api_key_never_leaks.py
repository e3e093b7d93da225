"""A planted API key appears in no API response, admin page, page, log line, error, export or event.

The sweep: every GET route of the project (API lists and details, admin changelists, change and add
pages, run pages, exports) for every object id, the endpoint connectivity test (API and admin
action), a run that fails because the server answers 401 and echoes the key, the run's live
events and its WebSocket state, the CLI's output, and every log record written meanwhile.
"""
import asyncio
import io
import json
import logging
import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.test import Client

from llm import client as llm_client
from orchestrator.asgi import application
from runs.engine import events, execute_run
from runs.models import Response, Run
from runs.services import run_start
from tests.api.test_access_and_schema import every_url
from tests.factories import make_chain, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)

PLANTED_KEY = "sk-planted-4f1d9a7c3e5b8d2f6a0c9e1b"
# The part of the key no mask shows: OpenAI-style errors quote "sk-pla**********9e1b".
SECRET_MIDDLE = PLANTED_KEY[6:-4]
SAMPLE_ID = re.compile(r"(?<=/)(1|x)(?=[/.]|$)")


def leaks(text: str) -> bool:
    return PLANTED_KEY in text or SECRET_MIDDLE in text


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # the message with its arguments and any traceback


@pytest.fixture
def every_log_line():  # type: ignore[no-untyped-def]
    capture = Capture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    yield capture.lines
    root.removeHandler(capture)
    root.setLevel(level)


def get_routes_with_ids(ids: set[int]) -> list[str]:
    """Every route of the project; a route that takes ids once for each of `ids` (the walker's sample id is 1 or x)."""
    paths = set()
    for sample, _pattern in every_url():
        if SAMPLE_ID.search(sample):
            paths.update(SAMPLE_ID.sub(str(value), sample) for value in ids)
        else:
            paths.add(sample)
    return sorted(paths)


async def run_to_end(run_id: int) -> str:
    try:
        return await execute_run(run_id)
    finally:
        await llm_client.aclose_all()  # pooled connections belong to this loop


def test_a_planted_key_is_never_shown_anywhere(fake_llm, user, every_log_line):
    fake_llm.control(api_key="sk-the-real-one", echo_key_on_401=True)
    endpoint = make_endpoint(fake_llm.base_url, api_key=PLANTED_KEY, max_retries=0)
    workflow = make_chain(endpoint, stream=True)
    run = run_start(workflow=workflow, inputs={"topic": "leaks"}, user=user)
    seen_events: list[dict] = []
    unsubscribe = events.subscribe(run.pk, seen_events.append)
    try:
        assert asyncio.run(run_to_end(run.pk)) == "failed"
    finally:
        unsubscribe()
    run.refresh_from_db()
    assert "401" in run.error  # the failure is explained ...
    seen: list[str] = [run.error, *Response.objects.filter(run=run).values_list("error", flat=True)]
    seen.append(json.dumps(seen_events))
    assert fake_llm.stats()["recent"]  # ... and the key did reach the server it is meant for

    # A page that fails still must not leak; 5xx answers are schemathesis's business (tests/reliability).
    client = Client(raise_request_exception=False)
    client.force_login(user)
    # The connectivity test quotes the server's 401 in its answer: over the API and as an admin action.
    seen.append(client.post(f"/api/endpoints/{endpoint.pk}/test/").content.decode())
    seen.append(client.post("/admin/llm/endpoint/", {"action": "run_connectivity_test",
                                                     "_selected_action": [endpoint.pk]}, follow=True).content.decode())
    ids = {endpoint.pk, workflow.pk, run.pk, user.pk, *Response.objects.values_list("pk", flat=True),
           *workflow.steps.values_list("payload_id", flat=True), *workflow.steps.values_list("pk", flat=True), 0, 1, 2}
    statuses = {}
    for path in get_routes_with_ids(ids):
        response = client.get(path)
        statuses[path] = response.status_code
        body = b"".join(response.streaming_content) if response.streaming else response.content
        seen.append(body.decode(errors="replace"))
    assert statuses["/api/endpoints/"] == 200 and statuses[f"/api/runs/{run.pk}/"] == 200
    assert statuses[f"/admin/llm/endpoint/{endpoint.pk}/change/"] == 200
    print("5xx during the sweep:", sorted(p for p, s in statuses.items() if s >= 500), "200s:", sum(s == 200 for s in statuses.values()))
    assert sum(status == 200 for status in statuses.values()) > 40  # the sweep saw real pages, not only 404s

    async def websocket_state() -> str:
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=[
            (b"host", b"localhost"), (b"origin", b"http://localhost"), (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())])
        assert (await communicator.connect())[0]
        message = await communicator.receive_from(timeout=5)
        await communicator.disconnect()
        return message

    state = async_to_sync(websocket_state)()
    assert '"failed"' in state
    seen.append(state)

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(BaseException):  # noqa: B017 - the CLI exits non-zero for a failed run; only its text matters
        call_command("run_workflow", workflow.name, "--input", "topic=cli", stdout=out, stderr=err)
    seen += [out.getvalue(), err.getvalue()]
    assert "401" in out.getvalue() + err.getvalue()

    assert every_log_line, "nothing was logged: the log capture is broken"
    leaked = [text[:300] for text in [*seen, *every_log_line] if leaks(text)]
    assert leaked == []
    assert Run.objects.filter(status="failed").count() == 2
