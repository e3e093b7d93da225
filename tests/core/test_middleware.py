"""Under ASGI, a request's middleware runs in the one thread of its sync view."""
import asgiref.sync
import pytest
from django.test import AsyncClient


@pytest.mark.django_db
async def test_a_request_under_asgi_hops_between_threads_only_into_the_view(monkeypatch):
    # Django's own middleware run async costs a sync_to_async hop per hook: with the middleware
    # in sync mode the request and its view make the hops Django cannot avoid, and no more.
    hops: list[str] = []
    original = asgiref.sync.SyncToAsync.__call__

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(asgiref.sync.SyncToAsync, "__call__", counting)
    response = await AsyncClient().get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert not any("process_request" in hop or "process_response" in hop for hop in hops), hops
