"""jobs_defer_async on Procrastinate's own in-memory connector: one insert, each job its own queueing lock,
and all or nothing when a lock is taken. tests/scaleout/test_batch_defer.py does the same on PostgreSQL."""
from __future__ import annotations

import pytest
from procrastinate import App, exceptions
from procrastinate.testing import InMemoryConnector

from core.internals.procrastinate_jobs import jobs_defer_async


@pytest.fixture
def app() -> App:
    app = App(connector=InMemoryConnector())

    @app.task(name="tests.echo")
    def echo(value: int) -> int:
        return value

    return app


def waiting(app: App) -> dict[str | None, dict]:
    connector = app.connector
    assert isinstance(connector, InMemoryConnector)
    return {job["queueing_lock"]: job["args"] for job in connector.jobs.values() if job["status"] == "todo"}


async def test_each_job_keeps_its_own_queueing_lock_and_arguments_in_one_insert(app: App) -> None:
    connector = app.connector
    assert isinstance(connector, InMemoryConnector)
    task = app.tasks["tests.echo"]

    ids = await jobs_defer_async([task.configure(queueing_lock=f"v-{n}", task_kwargs={"value": n}) for n in range(3)])

    assert waiting(app) == {f"v-{n}": {"value": n} for n in range(3)}
    assert ids == sorted(connector.jobs)
    assert [query for query, _ in connector.queries] == ["defer_jobs"]  # one statement for the three


async def test_a_taken_queueing_lock_fails_the_batch_and_queues_none_of_it(app: App) -> None:
    task = app.tasks["tests.echo"]
    await task.configure(queueing_lock="v-1").defer_async(value=1)

    with pytest.raises(exceptions.AlreadyEnqueued):
        await jobs_defer_async([task.configure(queueing_lock=f"v-{n}", task_kwargs={"value": n}) for n in range(3)])

    assert waiting(app) == {"v-1": {"value": 1}}


async def test_no_deferrer_queues_nothing(app: App) -> None:
    assert await jobs_defer_async([]) == []
    assert waiting(app) == {}
