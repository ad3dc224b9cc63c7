"""What the agents' integration tests share (this module holds no tests).

The whole system runs in-process as in `tests.system`; ingest is additionally served over
real HTTP by uvicorn, in the test's own event loop, since Prometheus and the OpenTelemetry
exporters cannot use an ASGI transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from services.demo import demo_terms
from tests import infra
from tests.system import System, make_settings, running_system

CONTRACT = "acme-2026"


def this_period() -> str:
    """Agents report the present: their measurements land in the current month."""
    return datetime.now(UTC).strftime("%Y-%m")


def terms() -> dict[str, Any]:
    document = copy.deepcopy(demo_terms(this_period()))
    document["contract_id"] = CONTRACT
    return document


@contextlib.asynccontextmanager
async def serve_over_http(app: Any) -> AsyncIterator[str]:
    """`app`, whose lifespan already runs, served on a free loopback port; yields its URL."""
    port = infra.free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
                raise AssertionError(f"uvicorn did not start on port {port}")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def slapay_with_http_ingest(tmp_path: Path) -> AsyncIterator[tuple[System, str]]:
    """The system in embedded mode with the contract agreed; yields it and ingest's URL."""
    async with running_system(make_settings(data_dir=tmp_path / "slapay")) as system:
        created = await system.ledger.post("/v1/contracts", json=terms(), headers=system.token())
        assert created.status_code == 201, created.text
        async with serve_over_http(system.apps["ingest"]) as url:
            yield system, url


async def kpi_line(system: System, kpi: str) -> dict[str, Any] | None:
    """The KPI's line of the current period's provisional statement, once there is one."""
    response = await system.statements.get(
        f"/v1/contracts/{CONTRACT}/statements/{this_period()}",
        headers=system.token("customer", [CONTRACT]),
    )
    if response.status_code != 200:
        return None
    line: dict[str, Any] | None = next(
        (x for x in response.json()["lines"] if x.get("kpi") == kpi), None
    )
    return line


def events(line: dict[str, Any] | None) -> int:
    return int(line["derivation"]["events"]) if line else 0
