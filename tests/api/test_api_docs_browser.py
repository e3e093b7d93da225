"""The API docs (Swagger UI at /api/docs/, ReDoc at /api/redoc/) work offline: a browser that may reach
only the app server still sees every operation."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import admin_user, browser  # noqa: F401


def offline_page(session):  # type: ignore[no-untyped-def]
    """A logged-in page whose requests to anywhere but the app server are aborted and recorded."""
    page = session.new_page()
    session.login(page)
    blocked: list[str] = []

    def only_the_app(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith(session.base_url + "/"):
            route.fallback()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_app)
    return page, blocked


def test_swagger_ui_and_redoc_show_the_operations_without_internet(browser, admin_user):  # noqa: F811
    page, blocked = offline_page(browser)
    page.goto(browser.base_url + "/api/docs/")
    expect(page.locator(".opblock-summary-path", has_text="/api/workflows/{id}/runs/").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/blocks/").first).to_be_visible()

    assert blocked == []

    # ReDoc's sidebar footer shows Redocly's logo from their CDN; offline it hides the image itself.
    browser.allow_errors(r"cdn\.redoc\.ly/redoc/logo-mini\.svg")
    page.goto(browser.base_url + "/api/redoc/")
    expect(page.locator("[role=menuitem][aria-label=workflows_runs_list]")).to_be_attached()
    expect(page.locator("[role=menuitem][aria-label=blocks_create]")).to_be_attached()
    expect(page.locator("h1", has_text="LLM Orchestrator API")).to_be_visible()
    assert [url for url in blocked if "cdn.redoc.ly/redoc/logo-mini.svg" not in url] == []
