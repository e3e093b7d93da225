"""What an open socket does with bad frames, big runs and users who lose their right to watch
(Channels' WebsocketCommunicator on the real ASGI app)."""
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from orchestrator.asgi import application
from runs.engine import execute_run
from runs.services import run_start
from tests.factories import make_chain, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)
HEADERS = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1")]
PATHS = ["/ws/runs/", "/ws/runs/{run}/", "/ws/watch/"]
BIG = 950_000  # an input under the 1M characters a prompt may have: with that prompt, 1.9 MB of state


@sync_to_async
def reader(*, superuser: bool = False) -> tuple[object, Client]:
    """A user allowed to watch runs, logged in with a session like a browser's."""
    User = get_user_model()
    if superuser:
        user = User.objects.create_superuser("admin", "a@example.com", "pw")
    else:
        user = User.objects.create_user("reader", "r@example.com", "pw")
        user.user_permissions.add(Permission.objects.get(codename="view_run"))
    client = Client()
    client.force_login(user)
    return user, client


@sync_to_async
def a_run(base_url: str = "http://127.0.0.1:9/v1", topic: str = "tides", name: str = "article") -> int:
    workflow = make_chain(make_endpoint(base_url, name=name), name=name)
    return run_start(workflow=workflow, inputs={"topic": topic}, user=None).pk


async def opened(path: str, client: Client) -> WebsocketCommunicator:
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    communicator = WebsocketCommunicator(application, path, headers=[*HEADERS, cookie])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def first_message(communicator: WebsocketCommunicator) -> dict:
    """The next text frame (the run.state of ws/runs/{id}/), with its size."""
    output = await communicator.receive_output(timeout=10)
    assert output["type"] == "websocket.send", output
    return {**json.loads(output["text"]), "_size": len(output["text"].encode())}


async def open_everywhere(client: Client, run_id: int) -> list[WebsocketCommunicator]:
    sockets = []
    for path in PATHS:
        socket = await opened(path.format(run=run_id), client)
        if "{run}" in path:
            assert (await first_message(socket))["type"] == "run.state"
        sockets.append(socket)
    return sockets


async def assert_all_closed_with(sockets: list[WebsocketCommunicator], code: int) -> None:
    for socket in sockets:
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": code}


@pytest.fixture
def quick_recheck(settings):  # type: ignore[no-untyped-def]
    settings.WS_RECHECK_SECONDS = 0.1


async def test_logging_out_closes_every_open_socket_with_4401_and_only_those(quick_recheck):
    _, client = await reader()
    _, other = await reader(superuser=True)
    run_id = await a_run()
    sockets = await open_everywhere(client, run_id)
    staying = await opened("/ws/watch/", other)
    await sync_to_async(client.logout)()
    await assert_all_closed_with(sockets, 4401)
    # The other user's socket lived through the same re-checks and still works.
    await staying.send_json_to({"type": "subscribe", "run_id": run_id})
    assert (await first_message(staying))["type"] == "run.state"
    await staying.disconnect()


async def test_a_deactivated_user_is_closed_with_4401(quick_recheck):
    user, client = await reader()
    sockets = await open_everywhere(client, await a_run())
    user.is_active = False
    await user.asave(update_fields=["is_active"])
    await assert_all_closed_with(sockets, 4401)


async def test_losing_view_run_closes_every_open_socket_with_4403(quick_recheck):
    user, client = await reader()
    sockets = await open_everywhere(client, await a_run())
    await sync_to_async(user.user_permissions.clear)()
    await assert_all_closed_with(sockets, 4403)


MALFORMED = [
    {"text_data": "not json"},
    {"text_data": "   "},
    {"text_data": '{"type": "subscribe", "run_id": 1'},
    {"text_data": "\ud800"},  # a lone surrogate
    {"text_data": '{"type": "\\udc00", "run_id": "\\ud800"}'},
    {"text_data": "[" * 100_000 + "]" * 100_000},  # nested past the parser's recursion limit
    {"bytes_data": b'{"type": "subscribe", "run_id": 1}'},
]


@pytest.mark.parametrize("path", PATHS)
async def test_a_malformed_frame_gets_an_error_and_the_socket_stays_open(path):
    _, client = await reader(superuser=True)
    run_id = await a_run()
    socket = await opened(path.format(run=run_id), client)
    if "{run}" in path:
        await first_message(socket)
    for frame in MALFORMED:
        await socket.send_to(**frame)
        error = await first_message(socket)
        assert error["type"] == "error" and error["error"], frame
    # Still open and working: the watch socket subscribes, the others just stay quiet.
    if path == "/ws/watch/":
        await socket.send_json_to({"type": "subscribe", "run_id": run_id})
        assert (await first_message(socket))["type"] == "run.state"
    else:
        assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


async def test_a_watch_message_of_the_wrong_shape_gets_an_error():
    _, client = await reader(superuser=True)
    socket = await opened("/ws/watch/", client)
    for content in ([], ["subscribe"], {"type": {}}, {"type": "subscribe", "run_id": [1]},
                    {"type": "subscribe", "run_id": 1e400}, "subscribe", None):
        await socket.send_to(text_data=json.dumps(content))
        error = await first_message(socket)
        assert error["type"] == "error" and error["field"] in ("type", "run_id"), content
    await socket.disconnect()


async def test_a_run_with_a_huge_input_is_sent_within_the_frame_bound_with_references(fake_llm, settings):
    _, client = await reader(superuser=True)
    big = await a_run(fake_llm.base_url, topic="x" * BIG)
    await execute_run(big)  # its first prompt holds the input too
    small = await a_run(fake_llm.base_url, name="small")
    socket = await opened("/ws/watch/", client)
    await socket.send_json_to({"type": "subscribe", "run_id": big})
    state = await first_message(socket)
    assert state["type"] == "run.state" and state["run"]["status"] == "succeeded", state["run"]["error"]
    assert state["_size"] <= settings.WS_MAX_FRAME_BYTES < 1024 * 1024
    assert len(state["run"]["inputs"]["topic"]) == settings.WS_FIELD_MAX_CHARS
    assert "run.inputs.topic" in state["truncated"] and "run.responses.0.messages.0.content" in state["truncated"]
    assert state["full_url"] == f"/api/runs/{big}/"
    # The full value is where the reference points, for the same user.
    full = await sync_to_async(client.get)(state["full_url"])
    assert full.json()["inputs"]["topic"] == "x" * BIG
    # The socket goes on: other runs are still followed over it, their messages whole.
    await socket.send_json_to({"type": "subscribe", "run_id": small})
    other = await first_message(socket)
    assert other["run_id"] == small and "truncated" not in other and other["run"]["inputs"] == {"topic": "tides"}
    await socket.disconnect()


async def test_a_step_event_with_a_huge_output_is_cut_and_points_at_the_run(fake_llm, settings):
    settings.WS_FIELD_MAX_CHARS = 1000
    _, client = await reader(superuser=True)
    run_id = await a_run(fake_llm.base_url)
    fake_llm.control(tokens=3000)
    socket = await opened(f"/ws/runs/{run_id}/", client)
    await first_message(socket)
    await execute_run(run_id)
    while (event := await first_message(socket))["type"] != "step.completed":
        pass
    assert len(event["output"]) == 1000 and event["truncated"] == ["output"]
    assert event["full_url"] == f"/api/runs/{run_id}/"
    await socket.disconnect()
