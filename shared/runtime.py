"""What every service is built from: settings, its database, the bus, background workers.

`build_app` is the shared half of each service's composition root: nothing connects at
import time; FastAPI's lifespan starts the engine, the bus and the consumers, and stops
them in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db, docs, idempotency, limits, parameters, revocation
from shared.bus import Bus
from shared.bus.factory import create_bus
from shared.consuming import Isolation
from shared.metrics import add_metrics_route
from shared.settings import Settings
from shared.telemetry import Telemetry, instrument_http, setup_tracing
from shared.web import add_health_routes, install_problem_handlers


@dataclass
class Runtime:
    service: str
    settings: Settings
    engine: AsyncEngine
    bus: Bus
    secret: str
    telemetry: Telemetry = field(default_factory=lambda: Telemetry.for_service("slapay"))
    revoked: revocation.RevokedTokens = field(default_factory=revocation.RevokedTokens)

    async def probe(self) -> None:
        """Raise when the database or the bus does not answer (an outage, not bad data)."""
        await db.ping(self.engine)
        await self.bus.ping()

    def isolation(self, group: str) -> Isolation:
        """How a consumer group of this service tells a poison record from an outage."""
        return Isolation(group, probe=self.probe)


Worker = Callable[[Runtime], Coroutine[Any, Any, None]]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def build_app(
    service: str,
    settings: Settings,
    metadata: MetaData,
    routers: Sequence[APIRouter],
    workers: Sequence[Worker] = (),
    bus: Bus | None = None,
) -> FastAPI:
    """A service app; `bus` replaces the one the settings name (tests pass a fake)."""
    telemetry = Telemetry.for_service(service)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_tracing(service)
        secret = settings.secret()
        engine = db.create_engine(settings.database_url_for(service))
        active_bus = bus or create_bus(settings)
        tasks: list[asyncio.Task[None]] = []
        try:
            await db.create_schema(engine, metadata)
            await db.create_schema(engine, idempotency.metadata)
            await active_bus.start()
            runtime = Runtime(service, settings, engine, active_bus, secret, telemetry=telemetry)
            app.state.runtime, app.state.auth_secret = runtime, secret
            tasks = [
                asyncio.create_task(worker(runtime), name=worker.__name__)
                for worker in (*workers, revocation.follow_revocations, idempotency.sweep)
            ]
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await active_bus.stop()
            await engine.dispose()
            telemetry.metrics.flush()

    app = FastAPI(
        title=f"slapay {service}",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(parameters.refuse_malformed)],
        docs_url=None,  # served by shared/docs.py without a CDN, and ReDoc not at all
        redoc_url=None,
    )
    install_problem_handlers(app)
    parameters.install(app)
    app.middleware("http")(idempotency.middleware)
    limits.install(app, settings)

    def ready_checks() -> list[Coroutine[Any, Any, None]]:
        runtime: Runtime = app.state.runtime
        return [db.ping(runtime.engine), runtime.bus.ping()]

    add_health_routes(app, ready_checks)
    add_metrics_route(app, telemetry.metrics)
    instrument_http(app, telemetry.metrics)
    app.state.telemetry = telemetry
    app.include_router(docs.router(app.title, app.openapi_url or "/openapi.json"))
    for router in routers:
        app.include_router(router)
    return app
