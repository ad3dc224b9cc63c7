"""Composition root of statements: API, the journal consumer and the webhooks' loops."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from services.statements import api, portal, store, webhooks_api
from services.statements.consumer import journal_loop
from services.statements.verification import Job, Verifications, run_verification
from services.statements.webhooks_worker import queue_loop, send_loop
from shared import keys_api, signing
from shared.bus import Bus
from shared.runtime import build_app
from shared.settings import Settings


def bootstrap(
    settings: Settings | None = None, bus: Bus | None = None, verify_job: Job = run_verification
) -> FastAPI:
    """`verify_job` runs each verification in its own process; it reads the bus and the
    database the settings name (a fake `bus` does not reach it)."""
    settings = settings or Settings()
    app = build_app(
        "statements",
        settings,
        store.metadata,
        [api.router, keys_api.router, portal.router, webhooks_api.router],
        workers=[journal_loop, queue_loop, send_loop],
        bus=bus,
    )
    # The same key material as the ledger (shared/signing.py), without its private key:
    # statements publishes the keys and checks signatures, it never signs.
    app.state.keyring = signing.load_keyring(settings).public()
    verifications = Verifications(
        settings, app.state.telemetry.metrics.provider.get_meter("slapay"), verify_job
    )
    app.state.verifications = verifications
    serve = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with serve(app), verifications.opened():
            yield

    app.router.lifespan_context = lifespan
    return app
