"""The statements service as the verification scenarios run it: a bus filled once per run
and mode, a fresh `slapay serve statements` process per repeat, and the timings read off it."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx

from bench.core import DISTRIBUTED, BenchError, progress
from bench.environment import SECRET, postgres_database, server
from bench.history import PERIOD, Ledger, ledger
from shared.auth import issue_token

TIMEOUT = httpx.Timeout(600.0)


@dataclass
class Prepared:
    n: int
    stack: contextlib.AsyncExitStack
    env: Ledger
    service: dict[str, str]
    """The statements service's settings: the same bus, a database of its own."""


_PREPARED: dict[tuple[str, str], Prepared] = {}


async def prepare(
    name: str, mode: str, n: int, fill: Callable[[Ledger], Awaitable[None]]
) -> Prepared:
    found = _PREPARED.get((name, mode))
    if found is not None and found.n == n:
        return found
    await release(name, mode)
    stack = contextlib.AsyncExitStack()
    try:
        env = await stack.enter_async_context(ledger(mode))
        service = {"bus": env.settings.bus, "data_dir": str(env.scratch)}
        if mode == DISTRIBUTED:
            service["database_url"] = await stack.enter_async_context(postgres_database())
        started = time.perf_counter()
        await fill(env)
        progress(f"  bus filled in {time.perf_counter() - started:.0f}s")
    except BaseException:
        await stack.aclose()
        raise
    _PREPARED[(name, mode)] = Prepared(n, stack, env, service)
    return _PREPARED[(name, mode)]


async def release(name: str, mode: str) -> None:
    found = _PREPARED.pop((name, mode), None)
    if found is not None:
        await found.stack.aclose()


@contextlib.asynccontextmanager
async def statements(prepared: Prepared, served: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh statements process, once it serves the final statements of `served`, and once
    its first verification has started the process all verifications are forked from."""
    headers = {"Authorization": f"Bearer {issue_token(SECRET, 'admin')}"}
    async with (
        server("statements", prepared.service, prepared.env.scratch) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=TIMEOUT) as client,
    ):
        deadline = time.monotonic() + 300
        for contract in served:
            while (await statement(client, contract)).get("status") != "final":
                if time.monotonic() > deadline:
                    raise BenchError(f"statements never served {contract}'s final statement")
                await asyncio.sleep(0.2)
        warm = await client.get(f"/v1/contracts/bench-nobody/statements/{PERIOD}/verify")
        if warm.status_code != 404:
            raise BenchError(f"verify of no contract: {warm.status_code} {warm.text[:200]}")
        yield client


async def statement(client: httpx.AsyncClient, contract: str) -> dict:
    response = await client.get(f"/v1/contracts/{contract}/statements/{PERIOD}")
    return response.json() if response.status_code == 200 else {}


async def verified(client: httpx.AsyncClient, contract: str, events: int) -> float:
    """Seconds one `GET …/verify` took, from the first ask; it must verify, over `events`
    measurements. Refused with 429 (the replica runs its most at once), it asks again after
    `Retry-After`, as a client would."""
    start = time.perf_counter()
    response = await client.get(f"/v1/contracts/{contract}/statements/{PERIOD}/verify")
    while response.status_code == 429:
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
        response = await client.get(f"/v1/contracts/{contract}/statements/{PERIOD}/verify")
    seconds = time.perf_counter() - start
    report = response.json() if response.status_code == 200 else {}
    if not report.get("verified") or report.get("events_on_bus") != events:
        raise BenchError(f"verify of {contract}: {response.status_code} {response.text[:300]}")
    return seconds


async def latency(client: httpx.AsyncClient, path: str) -> float:
    """Seconds a GET of `path` took; it must answer 200."""
    start = time.perf_counter()
    response = await client.get(path)
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        raise BenchError(f"GET {path}: {response.status_code} {response.text[:200]}")
    return seconds


async def latencies_while(
    client: httpx.AsyncClient, path: str, running: list[asyncio.Task[float]], pause_s: float = 0
) -> list[float]:
    """Latencies of GET `path`, one after another, while any of `running` runs."""
    found = []
    while not all(task.done() for task in running):
        found.append(await latency(client, path))
        await asyncio.sleep(pause_s)
    return found


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


async def rss_mb(client: httpx.AsyncClient) -> float:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return float(line.split()[1]) / 1e6
    raise BenchError("no process_resident_memory_bytes on /metrics")
