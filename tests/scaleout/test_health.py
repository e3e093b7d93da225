"""/healthz in distributed mode tells whether any worker is alive."""
import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_healthz_is_503_without_workers_and_200_with_one(start_worker):
    client = Client()
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["workers"] == 0
    worker = start_worker(concurrency=5)
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json() == {"status": "ok", "runs_backend": "procrastinate", "workers": 1}
    worker.stop()
