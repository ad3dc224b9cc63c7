"""Composition root of the ledger: API, the fold, the outbox relay, provisional statements
and closing periods on time."""

from __future__ import annotations

from fastapi import FastAPI

from services.ledger import api, store
from services.ledger.consumer import deadletter_loop, fold_worker
from services.ledger.provisional import provisional_loop
from services.ledger.workers import autoclose_loop, outbox_loop
from shared import keys_api, signing
from shared.bus import Bus
from shared.runtime import build_app
from shared.settings import Settings


def bootstrap(settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    settings = settings or Settings()
    keyring = signing.load_keyring(settings)  # the fold signs final statements with it
    app = build_app(
        "ledger",
        settings,
        store.metadata,
        [api.router, keys_api.router],
        workers=[
            fold_worker(keyring),
            outbox_loop,
            provisional_loop,
            autoclose_loop,
            deadletter_loop,
        ],
        bus=bus,
    )
    app.state.keyring = keyring
    return app
