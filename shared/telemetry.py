"""OpenTelemetry tracing: one tracer provider per process; W3C trace context rides the bus.

Spans are always recorded, so their ids reach the logs and the bus headers; they leave the
process only when the standard variables configure an exporter (`OTEL_TRACES_EXPORTER`, or
an `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP over HTTP). `OTEL_SDK_DISABLED=true` turns it off.

Across the bus: a publish injects `traceparent` into the record headers; a consumer's batch
span continues the trace of the batch's first record and links every other record's trace
(see `batch_span`); work the ledger defers (provisional statements) resumes the trace that
caused it through a `TraceHandoff`.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter, OrderedDict
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from fastapi import FastAPI
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind
from opentelemetry.util.types import AttributeValue

from shared.bus import Record
from shared.metrics import Metrics, otel_exporters, otlp_exporter
from shared.settings import ConfigurationError

MAX_LINKS = 64
NOT_TRACED = r"://[^/]+/(healthz|readyz|metrics)(\?|$)"


def setup_tracing(service: str) -> None:
    """Install the SDK provider once per process, with the exporters the environment names."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    for exporter in span_exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def span_exporters() -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in otel_exporters("traces"):
        if name == "otlp":
            exporters.append(otlp_exporter("trace_exporter", "OTLPSpanExporter")())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            raise ConfigurationError(f"OTEL_TRACES_EXPORTER: unsupported {name!r}")
    return exporters


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def span(name: str, **attributes: AttributeValue) -> AbstractContextManager[trace.Span]:
    """A child of the current span: `with span("ledger.fold measurements", events=n): ...`."""
    return tracer("slapay").start_as_current_span(name, attributes=attributes)


def inject_headers() -> dict[str, str]:
    """The current trace context as W3C headers (empty when no span is active)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def remote_context(headers: Mapping[str, str]) -> SpanContext | None:
    """The producer's span context carried by a record's headers, if any."""
    found = trace.get_current_span(propagate.extract(headers)).get_span_context()
    return found if found.is_valid else None


def instrument_http(app: FastAPI, metrics: Metrics) -> None:
    """Server spans and request-latency metrics for every route but health and metrics."""
    FastAPIInstrumentor.instrument_app(
        app,
        meter_provider=metrics.provider,
        excluded_urls=NOT_TRACED,
        exclude_spans=["receive", "send"],
    )


@contextlib.contextmanager
def batch_span(group: str, records: Sequence[Record]) -> Iterator[trace.Span]:
    """The span of one consumer batch.

    A batch mixes records from many requests, and a span has one parent: it continues the
    trace of the batch's first traced record (so a request's trace runs on through every
    consumer to the statements), and links each distinct producer span of the batch, so the
    other traces lead here too. What the handler publishes inside it carries this context.
    """
    contexts: dict[str, SpanContext] = {}
    for header in dict.fromkeys(r.headers.get("traceparent", "") for r in records):
        found = remote_context({"traceparent": header}) if header else None
        if found is not None:
            contexts.setdefault(header, found)
    parents = list(contexts.values())
    parent = trace.set_span_in_context(NonRecordingSpan(parents[0])) if parents else Context()
    types = Counter(r.headers.get("type", "unknown") for r in records)
    attributes: dict[str, AttributeValue] = {
        "messaging.operation.type": "process",
        "messaging.consumer.group.name": group,
        "messaging.batch.message_count": len(records),
        "messaging.destination.name": sorted({r.topic for r in records}),
        "slapay.event_types": [f"{t}={n}" for t, n in sorted(types.items())],
    }
    with tracer(__name__).start_as_current_span(
        f"process {group or 'records'}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=[Link(c) for c in parents[:MAX_LINKS]],
        attributes=attributes,
    ) as span:
        yield span


class TraceHandoff:
    """Carries traces across deferred work (e.g. a debounced snapshot): remembers, per key,
    the spans that last changed it; the deferred span then continues the latest of them and
    links the others. In memory and bounded: a restart loses a trace link, never data."""

    def __init__(self, max_keys: int = 10_000, max_per_key: int = 16) -> None:
        self._spans: OrderedDict[Hashable, list[SpanContext]] = OrderedDict()
        self._max_keys, self._max_per_key = max_keys, max_per_key

    def remember(self, keys: Iterable[Hashable]) -> None:
        """Record the current span as a cause of each key's next deferred work."""
        current = trace.get_current_span().get_span_context()
        if not current.is_valid:
            return
        for key in keys:
            causes = self._spans.pop(key, [])
            causes.append(current)
            self._spans[key] = causes[-self._max_per_key :]
        while len(self._spans) > self._max_keys:
            self._spans.popitem(last=False)

    @contextlib.contextmanager
    def resume(self, key: Hashable, name: str) -> Iterator[trace.Span]:
        """A span for the deferred work on `key`, in the trace of its latest cause."""
        causes = self._spans.pop(key, [])
        parent = trace.set_span_in_context(NonRecordingSpan(causes[-1])) if causes else Context()
        with tracer(__name__).start_as_current_span(
            name, context=parent, links=[Link(c) for c in causes[:-1]]
        ) as span:
            yield span


@dataclass
class Telemetry:
    """One app's telemetry: its metrics and the trace hand-offs of its background work."""

    metrics: Metrics
    handoff: TraceHandoff = field(default_factory=TraceHandoff)

    @classmethod
    def for_service(cls, service: str) -> Telemetry:
        return cls(Metrics(service))
