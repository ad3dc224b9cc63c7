"""Composition root of ingest."""

from __future__ import annotations

from fastapi import FastAPI

from services.ingest import api, store
from shared.bus import Bus
from shared.runtime import build_app
from shared.settings import Settings


def bootstrap(settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    return build_app("ingest", settings or Settings(), store.metadata, [api.router], bus=bus)
