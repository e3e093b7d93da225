"""ws/experiments/<id>/ through the real ASGI application: refused without a login or
experiments.view_experiment (at connect and at the periodic re-check), the progress now on connect,
then every experiment.progress the driver's passes send, to the end."""
from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.test import Client

from experiments import events
from experiments.driver import tick
from orchestrator.asgi import application
from runs.engine import execute_run
from tests.experiments.conftest import make_dataset_version, make_two_releases, start_experiment

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = [(b"host", b"localhost"), (b"origin", b"http://localhost")]


@sync_to_async
def an_experiment(base_url: str, rows: int = 3):  # type: ignore[no-untyped-def]
    workflow, first, second = make_two_releases(base_url)
    return start_experiment(workflow, make_dataset_version(rows), [first, second], concurrency=2)


@sync_to_async
def cookie(user) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()


async def person(django_user_model, *codenames: str):  # type: ignore[no-untyped-def]
    user = await django_user_model.objects.acreate(username=f"p{await django_user_model.objects.acount()}")
    for codename in codenames:
        await sync_to_async(user.user_permissions.add)(await Permission.objects.aget(codename=codename))
    return user


async def opened(path: str, *extra: tuple[bytes, bytes]) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[*HEADERS, *extra])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def closed_with(communicator: WebsocketCommunicator) -> int | None:
    message = await communicator.receive_output(timeout=5)
    await communicator.disconnect()
    return message.get("code") if message["type"] == "websocket.close" else None


async def test_anonymous_and_users_without_view_experiment_are_refused(fake_llm, django_user_model):
    experiment = await an_experiment(fake_llm.base_url)
    path = f"/ws/experiments/{experiment.pk}/"
    assert await closed_with(await opened(path)) == 4401
    runs_only = await person(django_user_model, "view_run")
    assert await closed_with(await opened(path, await cookie(runs_only))) == 4403
    reader = await person(django_user_model, "view_experiment")
    assert await closed_with(await opened("/ws/experiments/999999/", await cookie(reader))) == 4404


async def test_losing_the_permission_closes_an_open_socket(fake_llm, django_user_model, settings):
    settings.WS_RECHECK_SECONDS = 0.2
    experiment = await an_experiment(fake_llm.base_url)
    reader = await person(django_user_model, "view_experiment")
    communicator = await opened(f"/ws/experiments/{experiment.pk}/", await cookie(reader))
    first = await communicator.receive_json_from(timeout=5)
    assert first["type"] == "experiment.progress"
    await sync_to_async(reader.user_permissions.clear)()
    assert await closed_with(communicator) == 4403


async def drive_sending_progress(experiment_id: int) -> None:
    """What the embedded driver does (experiments.driver._Embedded._drive): tick, execute what
    started, send the pass's progress to the experiment's group, until final."""
    tasks: dict[int, asyncio.Task] = {}
    while True:
        result = await sync_to_async(tick)(experiment_id=experiment_id)
        for run_id in (*result.started, *result.running):
            tasks.setdefault(run_id, asyncio.ensure_future(execute_run(run_id)))
        if result.progress is not None:
            await events.asend(experiment_id, result.progress)
        if result.final:
            return
        pending = [t for t in tasks.values() if not t.done()]
        if pending:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)


async def test_a_reader_gets_the_progress_now_and_then_each_pass_until_finished(fake_llm, django_user_model):
    fake_llm.control(latency_ms=30)
    experiment = await an_experiment(fake_llm.base_url, rows=3)
    reader = await person(django_user_model, "view_experiment")
    communicator = await opened(f"/ws/experiments/{experiment.pk}/", await cookie(reader))
    now = await communicator.receive_json_from(timeout=5)
    assert now["type"] == "experiment.progress" and now["experiment_id"] == experiment.pk
    assert (now["status"], now["cells"], now["done"], now["queued"]) == ("running", 6, 0, 6)
    await drive_sending_progress(experiment.pk)
    seen = []
    while not seen or seen[-1]["status"] != "finished":
        seen.append(await communicator.receive_json_from(timeout=10))
    assert all(event["type"] == "experiment.progress" for event in seen)
    done = [event["done"] for event in seen]
    assert done == sorted(done) and len(seen) >= 2  # cells finished over several passes
    assert seen[-1]["done"] == 6 and seen[-1]["succeeded"] == 6 and seen[-1]["tokens"] > 0
    assert max(event["running"] for event in seen) == 2  # the concurrency cap, as the driver reported it
    await communicator.send_to(text_data=json.dumps({"type": "subscribe"}))
    answer = await communicator.receive_json_from(timeout=5)
    assert answer["type"] == "error"  # it only sends
    await communicator.disconnect()
