"""Composition root of reviews: the API, and the consumer of contracts and reviews."""

from __future__ import annotations

from fastapi import FastAPI

from services.reviews import api, store
from services.reviews.config import ReviewsConfig
from services.reviews.consumer import GROUP, apply_events
from shared.bus import Bus
from shared.consuming import envelopes, run_consumer
from shared.events import TOPIC_CONTRACTS, TOPIC_REVIEWS
from shared.runtime import Runtime, build_app
from shared.settings import Settings


async def consume_loop(runtime: Runtime) -> None:
    consumer = runtime.bus.consumer([TOPIC_CONTRACTS, TOPIC_REVIEWS], GROUP)
    await run_consumer(
        runtime.bus,
        consumer,
        lambda delivered: apply_events(runtime.engine, envelopes(delivered)),
        isolation=runtime.isolation(GROUP),
        observer=runtime.telemetry.metrics.consumer(GROUP),
    )


def bootstrap(settings: Settings | None = None, bus: Bus | None = None) -> FastAPI:
    """Refuses (`ConfigurationError`) to build without a pepper in distributed mode."""
    settings = settings or Settings()
    config = ReviewsConfig.from_settings(settings)
    app = build_app(
        "reviews", settings, store.metadata, [api.router], workers=[consume_loop], bus=bus
    )
    app.state.reviews_config = config
    return app
