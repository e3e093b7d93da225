"""Headless Chromium (Debian's `chromium`, driven by Playwright) against daphne on the test database.

Chromium is installed with apt-get when /usr/bin/chromium is missing (`playwright install` cannot
download here). Every page a test opens fails the test on a browser console error or page error.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.factories import make_chain, make_endpoint
from tests.servers import AppServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-gpu",
                 "--no-first-run", "--disable-sync"]
PASSWORD = "pw-for-browser-tests"
# expect() waits 5 s by default: too short for a page's first render when the suite's pytest-xdist
# workers share two cores with other Chromiums and servers. A bound on waiting, not on speed.
EXPECT_TIMEOUT_MS = 20_000

# Records, for every step card and the tester's answer, each (status, text length) it went through,
# so a test can tell text appeared while a step was still running without racing the stream.
STREAM_RECORDER = """
window.__seen = [];
const record = () => {
  for (const el of document.querySelectorAll('.step[data-index], #answer')) {
    const id = el.id === 'answer' ? 'answer' : 'step-' + el.dataset.index;
    const status = el.id === 'answer'
      ? document.getElementById('answer-status').dataset.status : el.dataset.status;
    const output = el.id === 'answer' ? el : el.querySelector('[data-field=output]');
    const entry = {id, status, length: output.textContent.length};
    const last = window.__seen.findLast((s) => s.id === id);
    if (!last || last.status !== status || last.length !== entry.length) window.__seen.push(entry);
  }
  // When the page's WebSocket went live: steps that start after that must be seen streaming.
  const conn = document.querySelector('.conn');
  const lastConn = window.__seen.findLast((s) => s.id === 'conn');
  if (conn && (!lastConn || lastConn.status !== conn.dataset.state)) {
    window.__seen.push({id: 'conn', status: conn.dataset.state, length: 0});
  }
};
document.addEventListener('DOMContentLoaded', () => {
  record();
  new MutationObserver(record).observe(document.body,
    {subtree: true, childList: true, characterData: true, attributes: true});
});
"""


def ensure_chromium() -> str:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail("/usr/bin/chromium is missing and cannot be installed here (needs root and apt-get)")
    # pytest-xdist workers reach their first browser test together: one installs, the others wait.
    with open(os.path.join(tempfile.gettempdir(), "orch-tests-chromium.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not CHROMIUM.exists():
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
            subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "chromium"], check=True, env=env, stdout=subprocess.DEVNULL)
    return str(CHROMIUM)


@dataclass
class Browser:
    """A fresh browser context for one test; `errors` collects console errors and page errors."""

    server: AppServer
    context: object
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow_errors(self, pattern: str) -> None:
        """Console errors the test causes on purpose (e.g. refused connections while the server is down)."""
        self.allowed.append(re.compile(pattern))

    @property
    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    @property
    def base_url(self) -> str:
        return self.server.url

    def new_page(self):  # type: ignore[no-untyped-def]
        page = self.context.new_page()  # type: ignore[attr-defined]
        page.set_default_timeout(30_000)
        page.on("console", lambda message: message.type == "error" and self.errors.append(
            f"console: {message.text} ({message.location.get('url', '')})"))
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        return page

    def login(self, page, username: str = "admin", path: str = "/") -> None:  # type: ignore[no-untyped-def]
        """Log in as a person does: the login page, then back where they were going."""
        page.goto(self.base_url + path)
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(self.base_url + path)


@pytest.fixture
def browser(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    """Chromium and daphne for one test. Playwright's sync API keeps an event loop running in this
    thread while it is started, so it is stopped with the test (before the database flush and any
    async test); the server too, so that its executor never picks up another test's runs."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    executable = ensure_chromium()
    # The ORM calls of the test body are plain sync code beside Playwright's loop.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    server = AppServer().start()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(STREAM_RECORDER)
        # The admin's login page links no icon, so Chromium asks for /favicon.ico and logs its 404 as a
        # console error; our pages declare an inline icon. Answer that one request here.
        context.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=""))
        session = Browser(server=server, context=context)
        try:
            yield session
        finally:
            context.close()
            chromium.close()
            server.stop()
    assert session.unexpected_errors == [], "browser console or page errors:\n" + "\n".join(session.unexpected_errors)


@pytest.fixture
def admin_user(transactional_db: None):  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_superuser("admin", "admin@example.com", PASSWORD)


@pytest.fixture
def article(fake_llm, admin_user):  # type: ignore[no-untyped-def]
    """The demo's shape: three streamed steps, outline -> paragraph -> summary, one described input."""
    workflow = make_chain(make_endpoint(fake_llm.base_url, name="Local mock LLM"), stream=True, name="Article")
    workflow.inputs = [{"name": "topic", "default": "ocean tides", "description": "What the article is about."}]
    workflow.save()
    return workflow
