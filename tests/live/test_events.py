"""Live run events over real WebSocket connections (Channels' WebsocketCommunicator on the ASGI app)."""
import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from orchestrator.asgi import application
from runs.engine import execute_run
from runs.models import Run
from runs.services import run_start
from tests.factories import expected_chain_output, make_chain, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = (b"host", b"127.0.0.1")


@sync_to_async
def session_cookie(superuser: bool = True) -> bytes:
    User = get_user_model()
    user = (User.objects.create_superuser("admin", "a@example.com", "pw") if superuser
            else User.objects.create_user("nobody", "n@example.com", "pw"))
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


@sync_to_async
def start(base_url: str, count: int = 1, stream: bool = True) -> list[Run]:
    workflow = make_chain(make_endpoint(base_url), stream=stream)
    return [run_start(workflow=workflow, inputs={"topic": f"t{i}"}, user=None) for i in range(count)]


async def connect(path: str, cookie: bytes | None, origin: tuple[bytes, bytes] = ORIGIN) -> WebsocketCommunicator:
    headers = [HOST, origin] + ([(b"cookie", cookie)] if cookie else [])
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def receive_until(communicator: WebsocketCommunicator, last_type: str, timeout: float = 20) -> list[dict]:
    received = []
    while True:
        event = await communicator.receive_json_from(timeout=timeout)
        received.append(event)
        if event["type"] == last_type:
            return received


def apply_deltas(events: list[dict], index: int, start: str = "") -> str:
    """What a browser shows: appends at the offset, replaces on a full-text delta."""
    text = start
    for event in events:
        if event["type"] != "step.delta" or event["index"] != index:
            continue
        if event.get("full") or event.get("reset"):
            text = event["text"]
        elif event["offset"] == len(text):
            text += event["text"]
    return text


async def test_a_streamed_run_sends_state_then_events_in_order(fake_llm):
    fake_llm.control(inter_token_ms=2)
    [run] = await start(fake_llm.base_url)
    ws = await connect(f"/ws/runs/{run.pk}/", await session_cookie())
    state = await ws.receive_json_from()
    assert state["type"] == "run.state" and state["run"]["status"] == "queued" and state["run"]["responses"] == []
    task = asyncio.create_task(execute_run(run.pk))
    received = await receive_until(ws, "run.completed")
    await task
    await ws.disconnect()
    kinds = [e["type"] for e in received if e["type"] != "step.delta"]
    assert kinds == ["run.started",
                     "step.started", "step.completed", "step.started", "step.completed", "step.started", "step.completed",
                     "run.completed"]
    completed = [e for e in received if e["type"] == "step.completed"]
    for event in completed:
        assert apply_deltas(received, event["index"]) == event["output"]
        assert event["completion_tokens"] == 20 and event["latency_ms"] >= 0
    assert completed[-1]["output"] == expected_chain_output("t0")
    # Deltas of a step arrive between its start and its completion.
    first_delta = next(i for i, e in enumerate(received) if e["type"] == "step.delta")
    assert received[first_delta - 1]["type"] in ("step.started", "step.delta")


async def test_a_client_connecting_mid_run_gets_the_state_then_every_later_event(fake_llm):
    fake_llm.control(inter_token_ms=60)
    [run] = await start(fake_llm.base_url)
    cookie = await session_cookie()
    early = await connect(f"/ws/runs/{run.pk}/", cookie)
    await early.receive_json_from()
    task = asyncio.create_task(execute_run(run.pk))
    # Wait until step 0 is done and step 1 is streaming, then connect a second client.
    seen = await receive_until(early, "step.started")
    seen += await receive_until(early, "step.started")
    seen += await receive_until(early, "step.delta")
    late = await connect(f"/ws/runs/{run.pk}/", cookie)
    state = (await late.receive_json_from())
    assert state["type"] == "run.state" and state["run"]["status"] == "running"
    assert [r["index"] for r in state["run"]["responses"]] == [0]
    late_events = await receive_until(late, "run.completed", timeout=30)
    early_events = seen + await receive_until(early, "run.completed", timeout=30)
    await task
    await early.disconnect()
    await late.disconnect()
    later_kinds = [e["type"] for e in late_events if e["type"] != "step.delta"]
    assert later_kinds == ["step.completed", "step.started", "step.completed", "run.completed"]
    # The late client ends with the same text for the step it joined in the middle of.
    step1 = next(e for e in late_events if e["type"] == "step.completed" and e["index"] == 1)
    assert apply_deltas(late_events, 1) == step1["output"] == apply_deltas(early_events, 1)


async def test_a_client_connecting_after_the_run_ended_gets_the_final_state(fake_llm):
    [run] = await start(fake_llm.base_url)
    await execute_run(run.pk)
    ws = await connect(f"/ws/runs/{run.pk}/", await session_cookie())
    state = await ws.receive_json_from()
    await ws.disconnect()
    assert state["run"]["status"] == "succeeded" and len(state["run"]["responses"]) == 3
    assert state["run"]["output"] == expected_chain_output("t0")


@pytest.mark.parametrize("path", ["/ws/runs/", "/ws/runs/1/"])
async def test_anonymous_connections_are_closed_with_4401(path):
    ws = await connect(path, None)
    closed = await ws.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_users_without_the_view_permission_are_closed_with_4403():
    ws = await connect("/ws/runs/", await session_cookie(superuser=False))
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}


async def test_a_wrong_origin_is_refused_before_anything_else():
    communicator = WebsocketCommunicator(application, "/ws/runs/", headers=[HOST, (b"origin", b"http://evil.example")])
    connected, _ = await communicator.connect()
    assert not connected


async def test_coalescing_caps_delta_messages_per_step(fake_llm):
    fake_llm.control(tokens=200, inter_token_ms=2)
    [run] = await start(fake_llm.base_url)
    ws = await connect(f"/ws/runs/{run.pk}/", await session_cookie())
    await ws.receive_json_from()
    task = asyncio.create_task(execute_run(run.pk))
    received = await receive_until(ws, "run.completed")
    await task
    await ws.disconnect()
    for index in range(3):
        started = next(e for e in received if e["type"] == "step.started" and e["index"] == index)
        done = next(e for e in received if e["type"] == "step.completed" and e["index"] == index)
        deltas = [e for e in received if e["type"] == "step.delta" and e["index"] == index]
        # 200 tokens over about 0.4 s: at most ~20 messages a second, far fewer than tokens.
        assert 1 <= len(deltas) <= 20, len(deltas)
        assert apply_deltas(received, index) == done["output"]
        assert received.index(started) < received.index(deltas[0])


async def test_a_burst_from_many_concurrent_runs_reaches_every_client_whole(fake_llm):
    fake_llm.control(inter_token_ms=1)
    runs = await start(fake_llm.base_url, count=30)
    cookie = await session_cookie()
    clients = [await connect(f"/ws/runs/{run.pk}/", cookie) for run in runs]
    list_client = await connect("/ws/runs/", cookie)
    for ws in clients:
        await ws.receive_json_from()
    await asyncio.gather(*(execute_run(run.pk) for run in runs))
    for run, ws in zip(runs, clients, strict=True):
        received = await receive_until(ws, "run.completed")
        completed = [e for e in received if e["type"] == "step.completed"]
        assert [e["index"] for e in completed] == [0, 1, 2]
        assert all(apply_deltas(received, e["index"]) == e["output"] for e in completed)
        assert completed[-1]["output"] == expected_chain_output(f"t{runs.index(run)}")
        await ws.disconnect()
    statuses = []
    while len([s for s in statuses if s["type"] == "run.completed"]) < 30:
        statuses.append(await list_client.receive_json_from(timeout=10))
    assert {s["run_id"] for s in statuses if s["type"] == "run.completed"} == {run.pk for run in runs}
    await list_client.disconnect()


async def test_one_watch_socket_follows_many_runs_with_every_event_of_each(fake_llm):
    fake_llm.control(inter_token_ms=1)
    first, second, unwatched = await start(fake_llm.base_url, count=3)
    ws = await connect("/ws/watch/", await session_cookie())
    for run in (first, second):
        await ws.send_json_to({"type": "subscribe", "run_id": run.pk})
        state = await ws.receive_json_from()
        assert state["type"] == "run.state" and state["run_id"] == run.pk and state["run"]["status"] == "queued"
    await asyncio.gather(*(execute_run(run.pk) for run in (first, second, unwatched)))
    received = []
    while sum(e["type"] == "run.completed" for e in received) < 2:
        received.append(await ws.receive_json_from(timeout=10))
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()
    for index, run in enumerate((first, second)):
        own = [e for e in received if e["run_id"] == run.pk]
        kinds = [e["type"] for e in own if e["type"] != "step.delta"]
        assert kinds == ["run.started", "step.started", "step.completed", "step.started", "step.completed",
                         "step.started", "step.completed", "run.completed"]
        completed = [e for e in own if e["type"] == "step.completed"]
        assert all(apply_deltas(own, e["index"]) == e["output"] for e in completed)
        assert completed[-1]["output"] == expected_chain_output(f"t{index}")
    assert not [e for e in received if e["run_id"] == unwatched.pk]


async def test_subscribing_after_the_run_ended_gives_its_final_state_and_unsubscribe_stops_events(fake_llm):
    done, later = await start(fake_llm.base_url, count=2, stream=False)
    await execute_run(done.pk)
    ws = await connect("/ws/watch/", await session_cookie())
    await ws.send_json_to({"type": "subscribe", "run_id": done.pk})
    state = await ws.receive_json_from()
    assert state["run"]["status"] == "succeeded" and state["run"]["output"] == expected_chain_output("t0")
    await ws.send_json_to({"type": "subscribe", "run_id": later.pk})
    assert (await ws.receive_json_from())["run_id"] == later.pk
    await ws.send_json_to({"type": "unsubscribe", "run_id": later.pk})
    await ws.send_json_to({"type": "subscribe", "run_id": 0})  # answered in order: the unsubscribe is done
    assert (await ws.receive_json_from())["field"] == "run_id"
    await execute_run(later.pk)
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


@pytest.mark.parametrize(("message", "field"), [
    ({"type": "subscribe", "run_id": "7"}, "run_id"),
    ({"type": "subscribe", "run_id": True}, "run_id"),
    ({"type": "subscribe", "run_id": 2**70}, "run_id"),
    ({"type": "subscribe"}, "run_id"),
    ({"type": "watch", "run_id": 1}, "type"),
    (["subscribe", 1], "type"),
])
async def test_bad_subscribe_messages_get_an_error_naming_the_field(message, field):
    ws = await connect("/ws/watch/", await session_cookie())
    await ws.send_json_to(message)
    answer = await ws.receive_json_from()
    await ws.disconnect()
    assert answer["type"] == "error" and answer["field"] == field and answer["error"]


async def test_subscribing_to_a_missing_run_is_an_error_and_the_socket_stays_open(fake_llm):
    [run] = await start(fake_llm.base_url, stream=False)
    ws = await connect("/ws/watch/", await session_cookie())
    await ws.send_json_to({"type": "subscribe", "run_id": run.pk + 1000})
    assert await ws.receive_json_from() == {"type": "error", "field": "run_id", "run_id": run.pk + 1000,
                                            "error": "No such run."}
    await ws.send_json_to({"type": "subscribe", "run_id": run.pk})
    assert (await ws.receive_json_from())["type"] == "run.state"
    await ws.disconnect()


async def test_a_socket_follows_at_most_max_subscriptions_runs(fake_llm, monkeypatch):
    from runs.consumers import RunWatchConsumer

    monkeypatch.setattr(RunWatchConsumer, "MAX_SUBSCRIPTIONS", 2)
    runs = await start(fake_llm.base_url, count=3, stream=False)
    ws = await connect("/ws/watch/", await session_cookie())
    for run in runs[:2]:
        await ws.send_json_to({"type": "subscribe", "run_id": run.pk})
        assert (await ws.receive_json_from())["type"] == "run.state"
    await ws.send_json_to({"type": "subscribe", "run_id": runs[2].pk})
    refused = await ws.receive_json_from()
    assert refused["type"] == "error" and "At most 2" in refused["error"]
    await ws.send_json_to({"type": "unsubscribe", "run_id": runs[0].pk})
    await ws.send_json_to({"type": "subscribe", "run_id": runs[2].pk})
    assert (await ws.receive_json_from())["run_id"] == runs[2].pk
    await ws.disconnect()


async def test_forwarding_events_costs_no_database_housekeeping(fake_llm, monkeypatch):
    # Channels closes stale connections (a thread hop) before each message; events read no database.
    import channels.consumer

    closings: list[str] = []
    original = channels.consumer.aclose_old_connections

    async def counting() -> None:
        closings.append("close")
        await original()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counting)
    [run] = await start(fake_llm.base_url, stream=False)
    ws = await connect("/ws/watch/", await session_cookie())
    await ws.send_json_to({"type": "subscribe", "run_id": run.pk})
    assert (await ws.receive_json_from())["type"] == "run.state"
    before_events = len(closings)
    assert before_events >= 2  # the connect and the subscribe still tidy connections before reading
    await execute_run(run.pk)
    received = await receive_until(ws, "run.completed")
    assert len(received) == 8 and received[-1]["type"] == "run.completed"
    assert len(closings) == before_events
    await ws.disconnect()
