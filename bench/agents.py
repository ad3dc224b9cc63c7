"""Prometheus remote write into ingest (samples/s), beside the JSON endpoint and a raw
aiokafka produce of as many envelopes, all in the same run against the same broker."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

import cramjam
import httpx

from bench import data
from bench.core import DISTRIBUTED, BenchError, Config, Rates, Scenario, run_steps, timed
from bench.environment import SECRET, broker, postgres_database, server
from bench.ingest import RAW_KAFKA, SLAPAY, kafka_produce, post_all
from services.ingest.prometheus_remote_pb2 import WriteRequest
from shared.auth import issue_token

REMOTE_WRITE = "slapay POST /v1/prometheus/write"
SERIES_PER_REQUEST, SAMPLES_PER_SERIES = 50, 10  # 500 samples a request, like the JSON batches
HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def write_requests(total: int) -> list[tuple[bytes, int]]:
    """Snappy-compressed WriteRequests of 500 samples each, unique series per run."""
    tag, start_ms = uuid.uuid4().hex[:8], 1_790_000_000_000
    bodies, made = [], 0
    while made < total:
        request = WriteRequest()
        for s in range(SERIES_PER_REQUEST):
            series = request.timeseries.add()
            labels = {
                "__name__": "probe_success",
                "instance": f"{tag}-{made + s}",
                "slapay_contract": data.CONTRACTS[s % len(data.CONTRACTS)],
                "slapay_kpi": "availability",
            }
            for name in sorted(labels):
                series.labels.add(name=name, value=labels[name])
            for k in range(SAMPLES_PER_SERIES):
                series.samples.add(value=1.0, timestamp=start_ms + k * 15_000)
        count = SERIES_PER_REQUEST * SAMPLES_PER_SERIES
        bodies.append((bytes(cramjam.snappy.compress_raw(request.SerializeToString())), count))
        made += count
    return bodies


async def remote_write_all(
    base_url: str, bodies: list[tuple[bytes, int]], concurrency: int
) -> float:
    token = issue_token(SECRET, "agent", list(data.CONTRACTS))
    headers = {**HEADERS, "Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as client:
        pending = iter(bodies)

        async def worker() -> None:
            for body, count in pending:
                response = await client.post("/v1/prometheus/write", content=body)
                accepted = int(response.headers.get("x-slapay-accepted", -1))
                if response.status_code >= 300 or accepted != count:
                    raise BenchError(f"remote write: {response.status_code} {response.text[:200]}")

        seconds = await timed(asyncio.gather(*(worker() for _ in range(concurrency))))
    return sum(count for _, count in bodies) / seconds


async def distributed_once(config: Config, turn: int) -> Rates:
    n = config.kafka_records
    writes = write_requests(n)
    bodies = data.request_bodies(data.items(n), config.http_batch)
    messages = data.messages(data.items(n))
    with broker() as bootstrap, tempfile.TemporaryDirectory(prefix="slapay-bench-") as tmp:
        async with postgres_database() as url:
            settings = {"bus": f"kafka://{bootstrap}", "database_url": url, "data_dir": tmp}
            await data.agree_contracts(settings)
            async with server("ingest", settings, Path(tmp)) as base_url:
                return await run_steps(
                    [
                        (
                            REMOTE_WRITE,
                            lambda: remote_write_all(base_url, writes, config.concurrency),
                        ),
                        (SLAPAY, lambda: post_all(base_url, bodies, config.concurrency)),
                        (RAW_KAFKA, lambda: kafka_produce(bootstrap, messages)),
                    ],
                    turn,
                )


SCENARIOS = (
    Scenario(
        "ingest-remote-write", DISTRIBUTED, REMOTE_WRITE, (SLAPAY, RAW_KAFKA), distributed_once
    ),
)
