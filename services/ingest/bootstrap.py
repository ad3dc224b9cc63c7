"""Composition root of ingest."""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import FastAPI

from services.ingest import agents_api, api, store, tickets_api
from services.ingest.contracts import ContractBook, follow_contracts
from shared.bus import Bus
from shared.events import utcnow
from shared.retrying import every
from shared.runtime import Runtime, build_app
from shared.settings import Settings

log = logging.getLogger(__name__)
FORGET_INTERVAL_S = 3600.0


def bootstrap(settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    """The ingest app: `POST /v1/measurements`, `POST /v1/tickets/events` and the agents'
    protocols (remote write, OTLP), checked against the contracts it follows on the bus."""
    book = ContractBook()

    async def contracts(runtime: Runtime) -> None:
        await follow_contracts(book, runtime.bus, runtime.service)

    app = build_app(
        "ingest",
        settings or Settings(),
        store.metadata,
        [api.router, tickets_api.router, agents_api.router],
        workers=[contracts, forget_old_publications],
        bus=bus,
    )
    app.state.contracts = book
    return app


async def forget_old_publications(runtime: Runtime) -> None:
    """Every hour, forget publications older than `ingest_dedupe_days` (a worker)."""
    keep = timedelta(days=runtime.settings.ingest_dedupe_days)

    async def forget() -> None:
        forgotten = await store.forget_before(runtime.engine, utcnow() - keep)
        if forgotten:
            log.info("forgot %d published measurement ids", forgotten)

    await every(FORGET_INTERVAL_S, forget, what="forgetting old published measurement ids")
