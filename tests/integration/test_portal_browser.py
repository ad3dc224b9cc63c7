"""A real headless Chromium signs in to the portal, opens a contract, sees the charts and
the statement total, downloads the CSV and opens the printable statement. Screenshots are
kept in the test's tmp dir; docs/portal.png (the README's) is made when missing and
refreshed with SLAPAY_UPDATE_SCREENSHOTS=1."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from shared.auth import issue_token
from tests import infra
from tests.integration.test_ledger import CONTRACT, availability, get, terms
from tests.integration.test_signatures import served
from tests.system import SECRET, System, eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MONTHS = {"2026-07": (1000, 240), "2026-08": (985, 420), "2026-09": (995, 280)}


def latency(period: str, p95: int) -> dict[str, Any]:
    """100 latency samples whose nearest-rank p95 is `p95`."""
    values = [p95 // 2] * 94 + [p95] * 6
    return {
        "measurements": [
            {
                "measurement_id": f"lat-{period}-{i}",
                "contract_id": CONTRACT,
                "kpi": "latency_ms",
                "value": value,
                "observed_at": f"{period}-{1 + i % 28:02d}T12:{i % 60:02d}:00Z",
            }
            for i, value in enumerate(values)
        ]
    }


async def three_closed_months(system: System) -> dict[str, Any]:
    """A contract since July: three closed months, one of them disputed."""
    created = await system.ledger.post(
        "/v1/contracts", json=terms(effective_from="2026-07"), headers=system.token()
    )
    assert created.status_code == 201, created.text
    agent = system.token("agent", [CONTRACT])
    for period, (up, p95) in MONTHS.items():
        for batch in (availability(1000, up, period, prefix=period), latency(period, p95)):
            response = await system.ingest.post("/v1/measurements", json=batch, headers=agent)
            assert response.status_code == 202, response.text
    for period in MONTHS:
        path = f"/v1/contracts/{CONTRACT}/statements/{period}"
        await eventually(
            lambda path=path: get(system, path),
            lambda s: s and sum(line["derivation"]["events"] for line in s["lines"]) == 1100,
        )
        closing = f"/v1/contracts/{CONTRACT}/periods/{period}/close"
        closed = await system.ledger.post(closing, headers=system.token())
        assert closed.status_code == 202, closed.text
    finals = {}
    for period in MONTHS:
        path = f"/v1/contracts/{CONTRACT}/statements/{period}"
        finals[period] = await eventually(
            lambda path=path: get(system, path), lambda s: s and s["status"] == "final"
        )
    disputed = await system.ledger.post(
        f"/v1/contracts/{CONTRACT}/disputes",
        headers=system.token("customer", [CONTRACT]),
        json={
            "period": "2026-08",
            "line_id": finals["2026-08"]["lines"][1]["line_id"],
            "reason": "Two of the outages were announced maintenance windows.",
        },
    )
    assert disputed.status_code == 201, disputed.text
    return finals["2026-09"]


def playwright_or_unavailable() -> Any:
    """Playwright's async entry point, once Playwright and Debian's Chromium are there."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        infra.unavailable("Playwright", "pip install playwright (make test installs it)")
    if not Path(CHROMIUM).exists():
        infra.unavailable("Chromium", f"no {CHROMIUM}: run .ci/install-browser.sh")
    return async_playwright


async def test_a_customer_signs_in_sees_charts_and_total_and_downloads_the_csv(
    system: System, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async_playwright = playwright_or_unavailable()
    september = await three_closed_months(system)
    await eventually(
        lambda: get(system, f"/v1/contracts/{CONTRACT}/statements/2026-08"),
        lambda s: s and s["disputes"],
    )
    token = issue_token(SECRET, "customer", [CONTRACT])
    async with served(system.apps["statements"]) as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(
                viewport={"width": 1200, "height": 900}, accept_downloads=True
            )
            page = await context.new_page()
            await page.goto(url + "/")
            await page.screenshot(path=str(tmp_path / "portal-sign-in.png"))
            await page.fill("textarea#token", token)
            await page.click("button[type=submit]")
            await page.click(f"a[href='/contracts/{CONTRACT}']")
            await page.wait_for_selector("svg.chart")
            assert await page.locator("svg.chart").count() >= 3  # compliance, 2 KPIs, money
            latest = page.locator("article.statement#period-2026-09")  # the final one
            assert await latest.locator(".total").inner_text() == f"{september['total']} EUR"
            assert "valid, signed by key" in await latest.locator(".check").inner_text()
            assert "announced maintenance" in await page.content()
            await page.screenshot(path=str(tmp_path / "portal-contract.png"), full_page=True)
            async with page.expect_download() as download_info:
                await latest.get_by_text("Download CSV").click()
            download = await download_info.value
            assert download.suggested_filename == f"{CONTRACT}-2026-09.csv"
            saved = tmp_path / download.suggested_filename
            await download.save_as(str(saved))
            rows = list(csv.DictReader(io.StringIO(saved.read_text())))
            assert [r["amount"] for r in rows] == [line["amount"] for line in september["lines"]]
            async with context.expect_page() as opened:
                await latest.get_by_text("Printable statement").click()
            printable = await opened.value
            await printable.wait_for_load_state()
            assert "Acme GmbH" in await printable.content()
            await printable.screenshot(path=str(tmp_path / "statement.png"), full_page=True)
            await page.set_viewport_size({"width": 390, "height": 844})
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, "the page scrolls sideways on a phone"
            await page.screenshot(path=str(tmp_path / "portal-phone.png"))
            await latest.scroll_into_view_if_needed()
            await page.screenshot(path=str(tmp_path / "portal-phone-statement.png"))
        finally:
            await browser.close()
    # The README's picture: made when missing, refreshed on request (key ids and times
    # differ on every run, so a plain test run leaves the work tree alone).
    readme_picture = ROOT / "docs" / "portal.png"
    refresh = os.environ.get("SLAPAY_UPDATE_SCREENSHOTS") == "1"
    if request.node.callspec.params.get("system") == "embedded" and (
        refresh or not readme_picture.exists()
    ):
        readme_picture.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "portal-contract.png", readme_picture)
