"""The four services in one event loop, each behind an in-process HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import httpx

from shared.auth import issue_token
from shared.settings import SERVICES, Settings

SECRET = "test-secret-" + "x" * 40


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_secret": SECRET,
        "reviews_pepper": "test-pepper-" + "p" * 40,
        "provisional_debounce_s": 0.1,
        "consumer_session_timeout_ms": 1000,
        "log_poll_interval_s": 0.02,
        "demo": False,
        "kafka_partitions": 3,
    }
    return Settings(**{**values, **overrides})


@dataclass
class System:
    settings: Settings
    clients: dict[str, httpx.AsyncClient]
    apps: dict[str, Any]
    running: dict[str, contextlib.AsyncExitStack] = field(default_factory=dict)

    async def start(self, name: str) -> None:
        """Start service `name` anew (its lifespan and a client for it)."""
        app = import_module(f"services.{name}.bootstrap").bootstrap(self.settings)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            self.clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
            )
            self.apps[name], self.running[name] = app, stack.pop_all()

    async def stop(self, name: str) -> None:
        """Stop service `name` as a shutdown does (its consumers leave their groups)."""
        await self.running.pop(name).aclose()

    def token(self, role: str = "admin", contracts: list[str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(SECRET, role, contracts or [])}"}

    @property
    def ingest(self) -> httpx.AsyncClient:
        return self.clients["ingest"]

    @property
    def ledger(self) -> httpx.AsyncClient:
        return self.clients["ledger"]

    @property
    def statements(self) -> httpx.AsyncClient:
        return self.clients["statements"]


@contextlib.asynccontextmanager
async def running_system(settings: Settings) -> AsyncIterator[System]:
    system = System(settings, {}, {})
    try:
        for name in SERVICES:
            await system.start(name)
        yield system
    finally:
        async with contextlib.AsyncExitStack() as stopping:  # in reverse, each even if one fails
            for name in list(system.running):
                stopping.push_async_callback(system.stop, name)


async def eventually(
    probe: Callable[[], Awaitable[Any]], accept: Callable[[Any], bool], timeout_s: float = 30.0
) -> Any:
    """Poll `probe` until `accept` holds for its result; fail with the last result."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if accept(last):
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not reached in {timeout_s}s; last: {last!r}")
