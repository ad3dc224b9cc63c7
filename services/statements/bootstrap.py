"""Composition root of statements: API and the journal consumer."""

from __future__ import annotations

from fastapi import FastAPI

from services.statements import api, portal, store
from services.statements.consumer import journal_loop
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
        [api.router, signing.router, portal.router],
        workers=[journal_loop],
        bus=bus,
    )
    # The same key material as the ledger (shared/signing.py), without its private key:
    # statements publishes the keys and checks signatures, it never signs.
    app.state.keyring = signing.load_keyring(settings).public()
    return app
