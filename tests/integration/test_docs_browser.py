"""`/docs` in a real headless Chromium that may reach nothing but the service: Swagger UI
renders under its CSP without a single violation, and "Try it out" acts with the token
pasted into "Authorize", never with the portal's session cookie the browser holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.auth import issue_token
from tests.integration.seeded import agree, period_back
from tests.integration.test_portal_browser import CHROMIUM, CHROMIUM_ARGS, playwright_or_unavailable
from tests.integration.test_signatures import served
from tests.system import SECRET, make_settings, running_system

pytestmark = pytest.mark.integration
CONTRACT = "docs-browser"
OPERATION = "#operations-statements-list_contracts_v1_contracts_get"
WATCH_CSP = """window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));"""


async def execute(page: Any) -> tuple[str, str]:
    """Run the listed operation; its live response's status and body."""
    operation = page.locator(OPERATION)
    await operation.locator("button.execute").click()
    live = operation.locator(".live-responses-table .response")
    await live.wait_for()
    status = (await live.locator(".response-col_status").inner_text()).split()[0]
    body = await live.locator(".response-col_description").inner_text()
    await operation.locator("button.btn-clear").click()
    return status, body


async def test_docs_render_offline_and_ignore_the_portal_session(tmp_path: Path) -> None:
    async_playwright = playwright_or_unavailable()
    async with running_system(make_settings(data_dir=tmp_path)) as system:
        await agree(system, CONTRACT, period_back(1))
        token = issue_token(SECRET, "customer", [CONTRACT])
        async with served(system.apps["statements"]) as url, async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                context = await browser.new_context(viewport={"width": 1200, "height": 900})
                elsewhere: list[str] = []
                errors: list[str] = []

                async def only_this_service(route: Any) -> None:
                    if route.request.url.startswith(url + "/"):
                        await route.continue_()
                    else:
                        elsewhere.append(route.request.url)
                        await route.abort()

                await context.route("**/*", only_this_service)
                await context.add_init_script(WATCH_CSP)
                page = await context.new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                await page.goto(url + "/")
                await page.fill("textarea#token", token)
                await page.click("button[type=submit]")
                assert any(c["name"] == "slapay_session" for c in await context.cookies())

                await page.goto(url + "/docs")
                await page.locator(f"{OPERATION} .opblock-summary").click()
                await page.locator(f"{OPERATION} button.try-out__btn").click()
                status, _ = await execute(page)
                assert status == "401"  # the session cookie stayed home

                await page.locator("button.authorize").first.click()
                await page.locator(".modal-ux input").fill(token)
                await page.locator(".modal-ux button.authorize").click()
                await page.locator(".modal-ux button.btn-done").click()
                status, body = await execute(page)
                assert status == "200", body
                assert CONTRACT in body
                await page.screenshot(path=str(tmp_path / "docs.png"))
                violations = await page.evaluate("window.cspViolations")
            finally:
                await browser.close()
    assert elsewhere == []
    assert violations == []
    # the browser logs the 401 above; nothing else may go wrong on the page
    assert [e for e in errors if "status of 401" not in e] == []
