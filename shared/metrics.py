"""Metrics: OpenTelemetry instruments per service, scraped at `GET /metrics` (Prometheus text).

Each app has its own `MeterProvider` and its own Prometheus `CollectorRegistry` (never the
process-global default), so four services in one test process never mix their numbers.
The same instruments go to an OTLP collector too when `OTEL_METRICS_EXPORTER=otlp` (or an
`OTEL_EXPORTER_OTLP_ENDPOINT` is set). Labels never carry contract ids or anything personal:
only outcomes, protocols, groups, topics, partitions, event types and routes.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import DropAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from shared.bus import ReportsLag
from shared.settings import ConfigurationError

log = logging.getLogger(__name__)

HTTP_VIEWS = (
    # Request latency by method, route template and status: no host, client or raw path.
    View(
        instrument_name="http.server.duration",
        attribute_keys={"http.method", "http.target", "http.status_code"},
    ),
    View(
        instrument_name="http.server.request.duration",
        attribute_keys={"http.request.method", "http.route", "http.response.status_code"},
    ),
    View(
        instrument_name="http.server.active_requests",
        attribute_keys={"http.method", "http.request.method"},
    ),
    View(instrument_name="http.server.*size*", aggregation=DropAggregation()),
)


def otel_exporters(signal: str) -> list[str]:
    """Exporter names for `traces` or `metrics` from the standard OTEL_* variables: the
    explicit `OTEL_<SIGNAL>_EXPORTER` list, else `otlp` when an OTLP endpoint is set, else none.
    Only OTLP over HTTP (protobuf) is built in."""
    names = os.environ.get(f"OTEL_{signal.upper()}_EXPORTER")
    if names is None:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
            f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
        )
        names = "otlp" if endpoint else "none"
    chosen = [n.strip() for n in names.split(",") if n.strip() not in ("", "none")]
    protocol = os.environ.get(
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL",
        os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    )
    if "otlp" in chosen and protocol != "http/protobuf":
        raise ConfigurationError(f"OTLP protocol {protocol!r} is not built in: use http/protobuf")
    return chosen


def otlp_exporter(module: str, name: str) -> Any:
    """An OTLP/HTTP exporter class, imported only when the environment asks for one."""
    try:
        found = importlib.import_module(f"opentelemetry.exporter.otlp.proto.http.{module}")
    except ImportError as exc:
        raise ConfigurationError(
            "OTLP export needs the opentelemetry-exporter-otlp-proto-http package"
        ) from exc
    return getattr(found, name)


def _otlp_reader() -> MetricReader:
    return PeriodicExportingMetricReader(otlp_exporter("metric_exporter", "OTLPMetricExporter")())


class Metrics:
    """One service's instruments and the registry its `/metrics` endpoint renders."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        readers: list[MetricReader] = [
            PrometheusMetricReader(scope_info_enabled=False, registry=self.registry)
        ]
        for name in otel_exporters("metrics"):
            if name != "otlp":
                raise ConfigurationError(f"OTEL_METRICS_EXPORTER: unsupported {name!r}")
            readers.append(_otlp_reader())
        self.provider = MeterProvider(
            metric_readers=readers,
            resource=Resource.create({"service.name": service}),
            views=HTTP_VIEWS,
            shutdown_on_exit=len(readers) > 1,  # flush the OTLP exporter at exit, if any
        )
        meter = self.provider.get_meter("slapay")
        self.measurements = meter.create_counter(
            "slapay.measurements",
            unit="{measurement}",
            description="Measurements received, by outcome (accepted, duplicate, rejected) "
            "and protocol (json, prometheus, otlp).",
        )
        self.reviews = meter.create_counter(
            "slapay.reviews",
            unit="{review}",
            description="Reviews accepted, by how they came (submitted, imported).",
        )
        self.events = meter.create_counter(
            "slapay.consumer.events",
            unit="{event}",
            description="Events a consumer group applied, by type (group ledger: events folded).",
        )
        self.deadletters = meter.create_counter(
            "slapay.deadletters",
            unit="{record}",
            description="Records parked on slapay.deadletter, by group and source topic.",
        )
        self.journal_entries = meter.create_counter(
            "slapay.journal.entries",
            unit="{entry}",
            description="Journal entries the ledger published.",
        )
        self._lag: dict[tuple[str, str, int], int] = {}
        meter.create_observable_gauge(
            "slapay.consumer.lag",
            callbacks=[self._observe_lag],
            unit="{record}",
            description="Records on the bus after a group's position, by topic and partition.",
        )

    def count_measurements(
        self, protocol: str, accepted: int = 0, duplicates: int = 0, rejected: int = 0
    ) -> None:
        counts = {"accepted": accepted, "duplicate": duplicates, "rejected": rejected}
        for outcome, n in counts.items():
            if n:
                self.measurements.add(n, {"outcome": outcome, "protocol": protocol})

    def set_lag(self, group: str, lag: dict[tuple[str, int], int]) -> None:
        for (topic, partition), behind in lag.items():
            self._lag[(group, topic, partition)] = behind

    def _observe_lag(self, _options: CallbackOptions) -> Iterable[Observation]:
        for (group, topic, partition), behind in list(self._lag.items()):
            yield Observation(behind, {"group": group, "topic": topic, "partition": partition})

    def consumer(self, group: str) -> ConsumerMetrics:
        return ConsumerMetrics(group, self)

    def render(self) -> bytes:
        """The Prometheus text exposition of this service's registry."""
        return generate_latest(self.registry)

    def flush(self) -> None:
        self.provider.force_flush(timeout_millis=5_000)


@dataclass
class ConsumerMetrics:
    """What the consumer loop of one group reports; lag at most every `lag_interval_s`."""

    group: str
    metrics: Metrics | None = None
    lag_interval_s: float = 5.0
    _next_lag_at: float = field(default=0.0, repr=False)

    def applied(self, counts: Mapping[str, int]) -> None:
        """Count a batch by the event types applied (type → events): one counter update per
        type, not per event (hot path)."""
        if self.metrics is not None:
            for kind, count in counts.items():
                self.metrics.events.add(count, {"group": self.group, "type": kind})

    def deadlettered(self, source_topics: Iterable[str]) -> None:
        if self.metrics is not None:
            for topic, count in Counter(source_topics).items():
                self.metrics.deadletters.add(count, {"group": self.group, "source_topic": topic})

    async def poll_lag(self, consumer: object) -> None:
        """Ask the consumer how far behind it is, if it can tell and it is time to ask."""
        if self.metrics is None or not isinstance(consumer, ReportsLag):
            return
        now = time.monotonic()
        if now < self._next_lag_at:
            return
        self._next_lag_at = now + self.lag_interval_s
        try:
            lag = await asyncio.wait_for(consumer.lag(), timeout=5)
        except asyncio.CancelledError:
            raise
        except Exception:  # a gauge must never stop the consumer; the failure is logged
            log.warning("could not measure the lag of group %s", self.group, exc_info=True)
            return
        self.metrics.set_lag(self.group, lag)


def add_metrics_route(app: FastAPI, metrics: Metrics) -> None:
    """`GET /metrics`: Prometheus text, unauthenticated (no personal data in any label);
    restrict who reaches it with the network policy."""

    @app.get("/metrics", include_in_schema=False)
    async def scrape() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
