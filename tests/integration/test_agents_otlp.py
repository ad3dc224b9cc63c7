"""The OpenTelemetry SDK's own OTLP/HTTP exporter pushes gauges into slapay over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from shared.auth import issue_token
from tests.integration.test_agents_common import (
    CONTRACT,
    events,
    kpi_line,
    slapay_with_http_ingest,
)
from tests.system import SECRET, System, eventually

pytestmark = pytest.mark.integration
HOUR_MS = 3_600_000


def exporter(url: str, token: str | None) -> OTLPMetricExporter:
    return OTLPMetricExporter(
        endpoint=f"{url}/otlp/v1/metrics",
        headers={"Authorization": f"Bearer {token}"} if token else {},
        compression=Compression.Gzip,
        timeout=10,
    )


async def test_sdk_gauges_reach_the_statement_and_a_resent_export_counts_once(
    tmp_path: Path,
) -> None:
    token = issue_token(SECRET, "agent", [CONTRACT])
    async with slapay_with_http_ingest(tmp_path) as (system, url):
        # The periodic reader the docs show, flushed by hand instead of waiting an interval
        # (shut down only at the end: shutting down exports the last value once more).
        provider = MeterProvider(
            metric_readers=[
                PeriodicExportingMetricReader(exporter(url, token), export_interval_millis=HOUR_MS)
            ],
            resource=Resource.create({"service.name": "shop-probe", "slapay.contract": CONTRACT}),
        )
        try:
            await _pushes_gauges(system, provider)
            await _resent_exports_count_once(system, url, token)
        finally:
            await asyncio.to_thread(provider.shutdown)


async def _pushes_gauges(system: System, provider: MeterProvider) -> None:
    availability = provider.get_meter("shop-probe").create_gauge("shop.up")
    for value in (1, 0, 1):
        availability.set(value, {"slapay.kpi": "availability"})
        assert await asyncio.to_thread(provider.force_flush)
        await asyncio.sleep(0.01)  # a new timestamp for the next point
    line = await eventually(
        lambda: kpi_line(system, "availability"), lambda x: events(x) == 3, timeout_s=20
    )
    assert line is not None
    assert line["derivation"]["value"] == pytest.approx(2 / 3)


async def _resent_exports_count_once(system: System, url: str, token: str) -> None:
    # The same export sent twice, as an exporter's retry would: one measurement.
    reader = InMemoryMetricReader()
    recorder = MeterProvider(metric_readers=[reader])
    recorder.get_meter("shop-probe").create_gauge("shop.latency").set(
        120, {"slapay.contract": CONTRACT, "slapay.kpi": "latency_ms"}
    )
    data = reader.get_metrics_data()
    assert data is not None
    sender = exporter(url, token)
    for _ in range(2):
        assert await asyncio.to_thread(sender.export, data) is MetricExportResult.SUCCESS
    latency = await eventually(
        lambda: kpi_line(system, "latency_ms"), lambda x: events(x) >= 1, timeout_s=20
    )
    assert latency is not None
    assert (events(latency), latency["derivation"]["value"]) == (1, 120)

    # Refusals are final: the exporter reports failure and does not retry.
    unauthorised = await asyncio.to_thread(exporter(url, None).export, data)
    assert unauthorised is MetricExportResult.FAILURE
    stranger = exporter(url, issue_token(SECRET, "agent", ["someone-else"]))
    assert await asyncio.to_thread(stranger.export, data) is MetricExportResult.FAILURE
    assert events(await kpi_line(system, "latency_ms")) == 1
