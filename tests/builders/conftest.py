
import pytest
from django.test import Client

from tests.factories import make_block, make_endpoint, make_payload, make_workflow


@pytest.fixture
def csrf_client(user) -> Client:  # type: ignore[no-untyped-def]
    """A logged-in client that, like a browser, must send the CSRF token."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.fixture
def chain(db):  # type: ignore[no-untyped-def]
    """A two-step workflow: outline (reads topic), then summary (reads previous)."""
    endpoint = make_endpoint(name="local", api_key="sk-secret-never-exported")
    outline_block = make_block("outline-prompt", "Outline {{ topic }} for {{ audience }}.")
    system_block = make_block("house-style", "You are terse.")
    summary_block = make_block("summary-prompt", "Summarize:\n{{ previous }}")
    outline = make_payload("outline", endpoint, [("system", system_block), ("user", outline_block)])
    summary = make_payload("summary", endpoint, [("user", summary_block)], temperature=0.2)
    workflow = make_workflow("article", [("outline", outline), ("summary", summary)],
                             inputs=[{"name": "topic", "description": "What about"},
                                     {"name": "audience", "default": "everyone"}])
    return {"endpoint": endpoint, "blocks": [outline_block, system_block, summary_block],
            "payloads": [outline, summary], "workflow": workflow}


# Headless Chromium and daphne from the run pages' browser tests: one setup for every page.
from tests.browser.conftest import admin_user, browser  # noqa: E402,F401
