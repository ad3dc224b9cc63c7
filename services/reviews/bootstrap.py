"""Composition root of reviews: the API, and the consumer of contracts and reviews."""

from __future__ import annotations

from fastapi import FastAPI

from services.reviews import api, store
from services.reviews.config import ReviewsConfig
from services.reviews.consumer import consume_loop
from shared.bus import Bus
from shared.runtime import build_app
from shared.settings import Settings


def bootstrap(settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    """Refuses (`ConfigurationError`) to build without a pepper in distributed mode."""
    settings = settings or Settings()
    config = ReviewsConfig.from_settings(settings)
    app = build_app(
        "reviews", settings, store.metadata, [api.router], workers=[consume_loop], bus=bus
    )
    app.state.reviews_config = config
    return app
