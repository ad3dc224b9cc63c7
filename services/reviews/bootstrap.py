"""Composition root of reviews (health and readiness so far; reviews arrive with issue #5)."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import MetaData

from shared.bus import Bus
from shared.runtime import build_app
from shared.settings import Settings

metadata = MetaData()


def bootstrap(settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    return build_app("reviews", settings or Settings(), metadata, [], bus=bus)
