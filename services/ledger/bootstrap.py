"""Composition root of the ledger: API, the fold consumer, the provisional publisher."""

from __future__ import annotations

from fastapi import FastAPI

from services.ledger import api, store
from services.ledger.consumer import GROUP, apply_events
from services.ledger.provisional import provisional_loop
from shared.bus import Bus
from shared.consuming import run_consumer
from shared.events import TOPIC_CONTRACTS, TOPIC_MEASUREMENTS
from shared.runtime import Runtime, build_app
from shared.settings import Settings


async def fold_loop(runtime: Runtime) -> None:
    consumer = runtime.bus.consumer([TOPIC_CONTRACTS, TOPIC_MEASUREMENTS], GROUP)
    await run_consumer(runtime.bus, consumer, lambda events: apply_events(runtime.engine, events))


def bootstrap(settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    return build_app(
        "ledger",
        settings or Settings(),
        store.metadata,
        [api.router],
        workers=[fold_loop, provisional_loop],
        bus=bus,
    )
