"""Live events of a run executed on a worker reach a browser connected to another web process."""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from django.test import Client

from runs.services import run_start
from tests.factories import make_chain, make_endpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


async def collect_run_events(url: str, headers: dict[str, str], start_worker_when_connected) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=headers) as socket:
        await asyncio.to_thread(start_worker_when_connected)
        async with asyncio.timeout(60):
            async for message in socket:
                event = message.json()
                received.append(event)
                if event["type"] in ("run.completed", "run.failed", "run.cancelled"):
                    break
    return received


def test_events_from_a_worker_reach_a_websocket_client_of_a_separate_daphne(fake_llm, start_worker, daphne_server,
                                                                              user):
    run = run_start(workflow=make_chain(make_endpoint(fake_llm.base_url), stream=True),
                    inputs={"topic": "tides"}, user=user)
    browser = Client()
    browser.force_login(user)
    headers = {"Cookie": f"sessionid={browser.cookies['sessionid'].value}", "Origin": daphne_server.url}
    ws_url = daphne_server.url.replace("http://", "ws://") + f"/ws/runs/{run.pk}/"

    # The worker starts only once the browser listens, so no event can go out before.
    events = asyncio.run(collect_run_events(ws_url, headers, lambda: start_worker(concurrency=5)))

    kinds = [event["type"] for event in events]
    assert kinds[-1] == "run.completed"
    assert [e["index"] for e in events if e["type"] == "step.completed"] == [0, 1, 2]
    assert "step.delta" in kinds
    assert {event["run_id"] for event in events} == {run.pk}
