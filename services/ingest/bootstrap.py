"""Composition root of ingest."""

from __future__ import annotations

from fastapi import FastAPI

from services.ingest import agents_api, api, store
from shared.bus import Bus
from shared.runtime import build_app
from shared.settings import Settings


def bootstrap(settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    """The ingest app: `POST /v1/measurements` and the agents' protocols (remote write, OTLP)."""
    return build_app(
        "ingest", settings or Settings(), store.metadata, [api.router, agents_api.router], bus=bus
    )
