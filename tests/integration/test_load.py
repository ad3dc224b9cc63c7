"""A bounded load test on loopback: many agents post batches to a uvicorn-served ingest
(its own process) for a while; the only refusals allowed are 429/503 with Retry-After, and
every acknowledged measurement ends up folded by the ledger exactly once. A request whose
connection drops before any response is resent once, as a client may resend an idempotent
request; such drops are counted and must stay rare.

`SLAPAY_LOAD_AGENTS` (default 50) agents for `SLAPAY_LOAD_SECONDS` (default 20 s), batches
of `SLAPAY_LOAD_BATCH` (default 20); `make test` runs it with these, which takes about 40 s.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from shared import jsonutil
from shared.auth import issue_token
from shared.events import TOPIC_MEASUREMENTS
from tests import infra
from tests.integration.seeded import agree, statement_events
from tests.system import SECRET, System, eventually, make_settings, running_system

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CONTRACT = "load-co"
AGENTS = int(os.environ.get("SLAPAY_LOAD_AGENTS", "50"))
SECONDS = float(os.environ.get("SLAPAY_LOAD_SECONDS", "20"))
BATCH = int(os.environ.get("SLAPAY_LOAD_BATCH", "20"))


@contextmanager
def ingest_process(data_dir: Path, port: int) -> Iterator[str]:
    """`slapay serve ingest` on the embedded bus in `data_dir`, with a database of its own."""
    env = {
        **os.environ,
        "SLAPAY_DATA_DIR": str(data_dir),
        "SLAPAY_AUTH_SECRET": SECRET,
        "SLAPAY_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'ingest-load.db'}",
        "SLAPAY_DEMO": "0",
    }
    command = [sys.executable, "-m", "services.cli", "serve", "ingest", "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
async def loaded(tmp_path: Path) -> AsyncIterator[tuple[System, str]]:
    async with running_system(make_settings(data_dir=tmp_path)) as system:
        await agree(system, CONTRACT, datetime.now(UTC).strftime("%Y-%m"))
        with ingest_process(tmp_path, infra.free_port()) as url:
            async with httpx.AsyncClient() as probe:
                await eventually(lambda: _ready(probe, url), lambda ok: ok)
            yield system, url


async def _ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(f"{url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def agent(
    client: httpx.AsyncClient, url: str, number: int, until: float, observed_at: str
) -> tuple[set[str], Counter[str]]:
    """Post batches until `until`; the measurement ids acknowledged, and every outcome."""
    headers = {"Authorization": f"Bearer {issue(number)}"}
    acknowledged: set[str] = set()
    outcomes: Counter[str] = Counter()
    sequence = 0
    while time.monotonic() < until:
        ids = [f"a{number}-{sequence + i}" for i in range(BATCH)]
        sequence += BATCH
        body = {"measurements": [measurement(i, observed_at) for i in ids]}
        try:
            try:
                response = await client.post(f"{url}/v1/measurements", json=body, headers=headers)
            except httpx.TransportError as exc:
                # The connection dropped before a response (a reused keep-alive connection can
                # be closed by the server as the request goes out). A client may resend an
                # idempotent request; measurement ids make this one so. Counted apart.
                outcomes[f"{type(exc).__name__}, resent"] += 1
                response = await client.post(f"{url}/v1/measurements", json=body, headers=headers)
        except httpx.HTTPError as exc:
            outcomes[type(exc).__name__] += 1
            continue
        status, retry_after = response.status_code, response.headers.get("retry-after")
        outcomes[
            f"{status} without Retry-After" if status >= 300 and not retry_after else str(status)
        ] += 1
        if status == 202:
            acknowledged.update(ids)
        elif retry_after:
            await asyncio.sleep(min(float(retry_after), 1.0))
    return acknowledged, outcomes


def issue(number: int) -> str:
    return issue_token(SECRET, "agent", [CONTRACT], subject=f"load-agent-{number}")


def measurement(measurement_id: str, observed_at: str) -> dict[str, object]:
    return {
        "measurement_id": measurement_id,
        "contract_id": CONTRACT,
        "kpi": "availability",
        "value": 1,
        "observed_at": observed_at,
    }


async def test_under_load_only_retryable_refusals_and_every_acknowledged_is_folded(
    loaded: tuple[System, str],
) -> None:
    system, url = loaded
    observed_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    until = time.monotonic() + SECONDS
    limits = httpx.Limits(max_connections=AGENTS, max_keepalive_connections=AGENTS)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        results = await asyncio.gather(
            *(agent(client, url, n, until, observed_at) for n in range(AGENTS))
        )
    acknowledged = set().union(*(ids for ids, _ in results))
    outcomes = sum((counts for _, counts in results), Counter())
    print(f"\nload: {AGENTS} agents, {SECONDS:g} s: {dict(outcomes)}; {len(acknowledged)} acked")
    resent = {k: n for k, n in outcomes.items() if k.endswith(", resent")}
    assert set(outcomes) - set(resent) <= {"202", "429", "503"}, outcomes
    assert outcomes["202"] > 0
    # seen: one in 1,300-2,100 requests, in some runs; more would be a server problem
    assert sum(resent.values()) <= outcomes.total() // 200, outcomes
    bus = system.apps["ledger"].state.runtime.bus
    on_bus = {
        jsonutil.loads(r.value)["data"]["measurement_id"]
        for r in await bus.read_all(TOPIC_MEASUREMENTS)
    }
    assert acknowledged <= on_bus
    period = observed_at[:7]
    await eventually(
        lambda: statement_events(system, CONTRACT, period),
        lambda n: n == len(on_bus),
        timeout_s=120,
    )
