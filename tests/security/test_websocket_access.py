"""Every WebSocket route refuses anonymous visitors and foreign origins (enumerated from the router)."""
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.test import Client

from orchestrator.asgi import application
from orchestrator.routing import websocket_urlpatterns
from runs.services import run_start
from tests.factories import make_chain, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")
HOST = (b"host", b"localhost")  # what a browser on http://localhost sends
ROUTE_PARAM = re.compile(r"<(?:\w+:)?\w+>")


def every_websocket_path(run_id: int) -> list[str]:
    return ["/" + ROUTE_PARAM.sub(str(run_id), pattern.pattern._route) for pattern in websocket_urlpatterns]


@sync_to_async
def a_run() -> int:
    return run_start(workflow=make_chain(make_endpoint()), inputs={"topic": "x"}, user=None).pk


@sync_to_async
def session_cookie(user) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()


async def first_answer(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[bool, object]:
    """(accepted, first message or close code) for a connection to `path` through the real ASGI app."""
    communicator = WebsocketCommunicator(application, path, headers=[HOST, *headers])
    connected, code = await communicator.connect()
    if not connected:
        return False, code
    answer = await communicator.receive_output(timeout=5)
    await communicator.disconnect()
    return True, answer


def refused(answer: tuple[bool, object], code: int) -> bool:
    accepted, message = answer
    return not accepted or (isinstance(message, dict) and message.get("type") == "websocket.close"
                            and message.get("code") == code)


async def test_router_lists_the_run_list_run_detail_watch_and_experiment_routes():
    assert every_websocket_path(7) == ["/ws/runs/", "/ws/runs/7/", "/ws/watch/", "/ws/experiments/7/"]


async def test_every_websocket_route_refuses_anonymous_visitors():
    run_id = await a_run()
    for path in every_websocket_path(run_id):
        assert refused(await first_answer(path, [ORIGIN]), 4401), path


async def test_every_websocket_route_refuses_a_user_without_view_run(django_user_model):
    run_id = await a_run()
    user = await django_user_model.objects.acreate(username="nobody")
    for path in every_websocket_path(run_id):
        assert refused(await first_answer(path, [ORIGIN, await session_cookie(user)]), 4403), path


async def test_a_user_with_view_run_gets_the_state(django_user_model):
    run_id = await a_run()
    user = await django_user_model.objects.acreate(username="reader")
    await sync_to_async(user.user_permissions.add)(await Permission.objects.aget(codename="view_run"))
    accepted, message = await first_answer(f"/ws/runs/{run_id}/", [ORIGIN, await session_cookie(user)])
    assert accepted and '"run.state"' in message["text"]


@pytest.mark.parametrize("origin", [b"http://evil.example", b"null", None])
async def test_a_foreign_or_missing_origin_is_refused_even_for_a_superuser(user, origin):
    run_id = await a_run()
    headers = [await session_cookie(user)] + ([(b"origin", origin)] if origin else [])
    for path in every_websocket_path(run_id):
        accepted, _ = await first_answer(path, headers)
        assert not accepted, (path, origin)
    # The same user from an allowed origin is let in: the refusal above is the origin check's.
    accepted, message = await first_answer(f"/ws/runs/{run_id}/", [ORIGIN, await session_cookie(user)])
    assert accepted and '"run.state"' in message["text"]


async def origin_accepted(host: bytes, origin: bytes, *extra: tuple[bytes, bytes]) -> bool:
    communicator = WebsocketCommunicator(application, "/ws/runs/", headers=[(b"host", host), (b"origin", origin), *extra])
    connected, _ = await communicator.connect()
    if connected:
        await communicator.disconnect()
    return connected


@pytest.mark.parametrize(("host", "own", "foreign"), [
    (b"localhost:8000", b"http://localhost:8000", b"http://localhost:8001"),  # another port of the same host
    (b"localhost:8000", b"http://localhost:8000", b"http://localhost"),
    (b"LocalHost", b"http://localhost:80", b"http://localhost:8080"),
    (b"localhost:8000", b"http://localhost:8000", b"https://localhost:8000"),  # another scheme
    (b"localhost", b"http://localhost", b"https://localhost"),
    (b"localhost", b"http://localhost", b"http://127.0.0.1"),  # another allowed host than the page's
    (b"localhost", b"http://localhost", b"http://localhost/path"),
    (b"[::1]:8000", b"http://[::1]:8000", b"http://user@[::1]:8000"),
])
async def test_only_the_pages_own_scheme_host_and_port_are_accepted(host, own, foreign):
    assert not await origin_accepted(host, foreign)
    assert await origin_accepted(host, own)


async def test_behind_a_tls_proxy_the_https_origin_is_the_pages(settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    forwarded = (b"x-forwarded-proto", b"https")
    assert await origin_accepted(b"localhost", b"https://localhost", forwarded)
    assert not await origin_accepted(b"localhost", b"http://localhost", forwarded)


async def test_csrf_trusted_origins_are_accepted_with_their_exact_port(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com", "https://*.example.org:8443"]
    assert await origin_accepted(b"localhost", b"https://app.example.com")
    assert await origin_accepted(b"localhost", b"https://a.example.org:8443")
    assert not await origin_accepted(b"localhost", b"https://app.example.com:8443")
    assert not await origin_accepted(b"localhost", b"http://app.example.com")
    assert not await origin_accepted(b"localhost", b"https://a.example.org")
