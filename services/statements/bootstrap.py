"""Composition root of statements: API and the journal consumer."""

from __future__ import annotations

from fastapi import FastAPI

from services.statements import api, portal, store
from services.statements.consumer import GROUP, apply_events
from shared import signing
from shared.bus import Bus
from shared.consuming import envelopes, run_consumer
from shared.events import TOPIC_CONTRACTS, TOPIC_JOURNAL
from shared.runtime import Runtime, build_app
from shared.settings import Settings


async def journal_loop(runtime: Runtime) -> None:
    consumer = runtime.bus.consumer([TOPIC_JOURNAL, TOPIC_CONTRACTS], GROUP)
    await run_consumer(
        runtime.bus,
        consumer,
        lambda delivered: apply_events(runtime.engine, envelopes(delivered)),
        isolation=runtime.isolation(GROUP),
        observer=runtime.telemetry.metrics.consumer(GROUP),
    )


def bootstrap(settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    settings = settings or Settings()
    app = build_app(
        "statements",
        settings,
        store.metadata,
        [api.router, signing.router, portal.router],
        workers=[journal_loop],
        bus=bus,
    )
    # The same key material as the ledger (shared/signing.py), without its private key:
    # statements publishes the keys and checks signatures, it never signs.
    app.state.keyring = signing.load_keyring(settings).public()
    return app
