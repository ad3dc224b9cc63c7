"""Composition root of the ledger: API, the fold, the outbox relay, provisional statements
and closing periods on time."""

from __future__ import annotations

from fastapi import FastAPI

from services.ledger import api, periods_api, store
from services.ledger.provisional import provisional_loop
from services.ledger.workers import autoclose_loop, fold_loop, outbox_loop
from shared.bus import Bus
from shared.runtime import build_app
from shared.settings import Settings


def bootstrap(settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    return build_app(
        "ledger",
        settings or Settings(),
        store.metadata,
        [api.router, periods_api.router],
        workers=[fold_loop, outbox_loop, provisional_loop, autoclose_loop],
        bus=bus,
    )
