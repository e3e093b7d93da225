"""Redis (the channel layer) restarts while runs execute on a worker.

Redis carries only live events; the database is the record. A restart (no persistence, so every
group membership is gone) must not fail a run, and a browser that reconnects afterwards must get
the whole state from its new connection.
"""
from __future__ import annotations

import asyncio
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import pytest
from django.test import Client

from runs.models import FINAL_STATUSES, Response, Run
from tests.scaleout import servers
from tests.scaleout.conftest import wait_until
from tests.scaleout.test_workers import assert_every_run_succeeded_once_per_step, start_runs, wait_for_final

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

FINAL_EVENTS = ("run.completed", "run.failed", "run.cancelled")


class SessionRedis:
    """The session's Redis server (tests/scaleout/servers.py), stopped and started on the same port."""

    def __init__(self) -> None:
        assert servers._servers is not None and servers._servers.redis is not None
        self.servers = servers._servers
        self.command = list(self.servers.redis.args)  # type: ignore[arg-type]

    def stop(self) -> None:
        redis = self.servers.redis
        assert redis is not None
        redis.terminate()
        redis.wait(10)

    def start(self) -> None:
        # The session's teardown stops whatever process is here, so the new one replaces the old.
        with open(self.servers.root / "redis.log", "ab") as log:
            self.servers.redis = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        servers._wait_for_port(self.servers.redis_port)


async def receive_until_final(url: str, headers: dict[str, str], timeout: float) -> list[dict[str, Any]]:
    """What one WebSocket connection receives until the run's final event, a close, or the timeout."""
    received: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=headers) as socket:
        try:
            async with asyncio.timeout(timeout):
                async for message in socket:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    received.append(message.json())
                    if finished(received):
                        break
        except TimeoutError:
            pass
    return received


def finished(received: list[dict[str, Any]]) -> bool:
    last = received[-1]
    return last["type"] in FINAL_EVENTS or (last["type"] == "run.state" and last["run"]["status"] in FINAL_STATUSES)


def reconnect_like_the_browser(url: str, headers: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    """static/js/live-socket.js: reconnect after every drop, 0.5 s later, then twice as long each time.

    Returns what the first connection that delivered the run's state received, and how many
    connections were dropped before it.
    """
    delay, dropped = 0.5, 0
    while True:
        try:
            received = asyncio.run(receive_until_final(url, headers, timeout=20))
        except aiohttp.ClientError:
            received = []
        if received:
            return received, dropped
        dropped += 1
        assert dropped < 5, "five connections in a row were dropped before sending the run's state"
        time.sleep(delay)
        delay *= 2


def steps_seen(received: list[dict[str, Any]]) -> set[int]:
    """Step indexes a client knows are done: those in the state it got plus those completed after."""
    state = received[0]["run"]
    done = {response["index"] for response in state["responses"] if response["status"] == "succeeded"}
    return done | {event["index"] for event in received[1:] if event["type"] == "step.completed"}


def test_redis_restart_mid_run_loses_no_step_and_a_reconnecting_browser_sees_the_full_state(
        fake_llm, start_worker, daphne_server, user):
    redis = SessionRedis()
    fake_llm.control(latency_ms=2500)
    start_worker(concurrency=20)
    run_ids = start_runs(fake_llm, 20)
    watched = run_ids[-1]
    browser = Client()
    browser.force_login(user)
    headers = {"Cookie": f"sessionid={browser.cookies['sessionid'].value}", "Origin": daphne_server.url}
    ws_url = daphne_server.url.replace("http://", "ws://") + f"/ws/runs/{watched}/"
    wait_until(lambda: Run.objects.filter(pk__in=run_ids, status="running").count() == len(run_ids), 30,
               "the worker never started all runs")
    # A browser watching when Redis goes away: daphne holds Redis connections that the restart breaks.
    with ThreadPoolExecutor(1) as pool:
        before = pool.submit(asyncio.run, receive_until_final(ws_url, headers, timeout=20))
        time.sleep(0.5)

        redis.stop()
        # Down until steps have finished (their events had nowhere to go), with steps still in flight.
        wait_until(lambda: Response.objects.filter(run_id__in=run_ids, index=0).exists(), 10,
                   "no step finished while Redis was down")
        time.sleep(1.0)
        active_at_restart = Run.objects.filter(pk__in=run_ids, status="running").count()
        committed_while_down = Response.objects.filter(run_id__in=run_ids).count()
        redis.start()
        received_before = before.result()

    # Pooled Redis connections the restart broke are retried on fresh ones (settings._redis_host),
    # so the browser's first reconnection after the restart is not dropped.
    received, dropped = reconnect_like_the_browser(ws_url, headers)
    wait_for_final(run_ids, timeout=30)

    assert_every_run_succeeded_once_per_step(run_ids)
    assert active_at_restart > 0, "every run had finished before Redis came back: nothing was in flight"
    assert committed_while_down > 0, "no step was committed while Redis was down"
    assert dropped == 0, f"{dropped} reconnections were dropped after the restart"
    assert received_before[:1] and received_before[0]["type"] == "run.state"
    assert received[0]["type"] == "run.state" and received[0]["run"]["id"] == watched
    assert finished(received), f"the reconnected browser never saw run {watched} finish: {received[1:]}"
    assert received[-1]["type"] == "run.completed" or received[0]["run"]["status"] == "succeeded"
    assert steps_seen(received) == {0, 1, 2}
