"""Composition root of statements: API, the journal consumer and the webhooks' loops."""

from __future__ import annotations

from fastapi import FastAPI

from services.statements import api, portal, store, webhooks_api
from services.statements.consumer import journal_loop
from services.statements.webhooks_worker import queue_loop, send_loop
from shared import signing
from shared.bus import Bus
from shared.runtime import build_app
from shared.settings import Settings


def bootstrap(settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    settings = settings or Settings()
    app = build_app(
        "statements",
        settings,
        store.metadata,
        [api.router, signing.router, portal.router, webhooks_api.router],
        workers=[journal_loop, queue_loop, send_loop],
        bus=bus,
    )
    # The same key material as the ledger (shared/signing.py), without its private key:
    # statements publishes the keys and checks signatures, it never signs.
    app.state.keyring = signing.load_keyring(settings).public()
    return app
