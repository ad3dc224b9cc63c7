"""One trace runs from `POST /v1/measurements` through the ledger's fold to the statements.

The chain asserted, span by span (parent → child), all under the trace id the client sent:
ingest's HTTP span → `ingest.publish` (its context rides the records' `traceparent`) →
the ledger's batch span `process ledger` → `ledger.fold measurements`, and, through the
debounce, `ledger.provisional` → `slapay.publish` (the `statement.provisional` record) →
the statements' batch span `process statements`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.bus import Record
from shared.telemetry import TraceHandoff, batch_span, setup_tracing
from tests.integration.test_end_to_end import CONTRACT, batch, statement_events, terms
from tests.system import System, eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """Every span of this process, kept in memory (the provider is process-wide)."""
    setup_tracing("slapay-tests")
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        pytest.skip("OTEL_SDK_DISABLED is set: no spans to look at")
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield spans
    spans.shutdown()


def only(spans: list[ReadableSpan], name: str, parent: ReadableSpan | None = None) -> ReadableSpan:
    """The single span called `name` (under `parent`, if given)."""
    found = [
        s
        for s in spans
        if s.name == name
        and (parent is None or (s.parent is not None and s.parent.span_id == span_id(parent)))
    ]
    assert len(found) == 1, (name, [(s.name, s.parent) for s in spans])
    return found[0]


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


async def test_one_trace_runs_from_ingest_through_ledger_to_statements(
    system: System, exporter: InMemorySpanExporter
) -> None:
    created = await system.ledger.post("/v1/contracts", json=terms(), headers=system.token())
    assert created.status_code == 201, created.text
    agent = system.token("agent", [CONTRACT])
    warm_up = await system.ingest.post("/v1/measurements", json=batch(10), headers=agent)
    assert warm_up.status_code == 202, warm_up.text
    await eventually(lambda: statement_events(system), lambda n: n == 10)
    exporter.clear()

    trace_id = secrets.randbits(128) or 1
    traceparent = f"00-{trace_id:032x}-{secrets.randbits(64) or 1:016x}-01"
    posted = await system.ingest.post(
        "/v1/measurements",
        json=batch(5, prefix="traced"),
        headers={**agent, "traceparent": traceparent},
    )
    assert posted.status_code == 202, posted.text
    await eventually(lambda: statement_events(system), lambda n: n == 15)
    await eventually(
        lambda: _spans_named(exporter, trace_id, "process statements"), lambda n: n >= 1
    )

    spans = [s for s in exporter.get_finished_spans() if _trace_of(s) == trace_id]
    http = only(spans, "POST /v1/measurements")
    assert http.kind == trace.SpanKind.SERVER
    publish = only(spans, "ingest.publish", parent=http)
    ledger = only(spans, "process ledger", parent=publish)
    assert ledger.kind == trace.SpanKind.CONSUMER
    assert ledger.attributes is not None
    assert ledger.attributes["messaging.consumer.group.name"] == "ledger"
    only(spans, "ledger.fold measurements", parent=ledger)
    provisional = only(spans, "ledger.provisional", parent=ledger)
    snapshot = only(spans, "slapay.publish", parent=provisional)
    statements = only(spans, "process statements", parent=snapshot)
    assert statements.attributes is not None
    assert "statement.provisional=1" in statements.attributes["slapay.event_types"]  # type: ignore[operator]


def _trace_of(span: ReadableSpan) -> int:
    return span.context.trace_id if span.context is not None else 0


async def _spans_named(exporter: InMemorySpanExporter, trace_id: int, name: str) -> int:
    return sum(
        1 for s in exporter.get_finished_spans() if s.name == name and _trace_of(s) == trace_id
    )


def record(traceparent: str | None, offset: int) -> Record:
    headers = {"type": "sla.measurement.recorded"}
    if traceparent:
        headers["traceparent"] = traceparent
    return Record("slapay.measurements", 0, offset, "acme", b"{}", headers)


def test_a_batch_continues_its_first_trace_and_links_every_other(
    exporter: InMemorySpanExporter,
) -> None:
    exporter.clear()
    first, second = (f"00-{i:032x}-{i:016x}-01" for i in (0xA1, 0xB2))
    batch = [record(first, 1), record(second, 2), record(first, 3), record(None, 4)]
    with batch_span("ledger", batch):
        pass
    [span] = exporter.get_finished_spans()
    assert span.context is not None and span.parent is not None
    assert (span.context.trace_id, span.parent.span_id) == (0xA1, 0xA1)
    assert sorted(link.context.trace_id for link in span.links) == [0xA1, 0xB2]
    assert span.attributes is not None
    assert span.attributes["messaging.batch.message_count"] == 4


def test_a_batch_counts_its_types_whether_or_not_records_share_their_headers(
    exporter: InMemorySpanExporter,
) -> None:
    exporter.clear()
    traced = {"type": "sla.measurement.recorded", "traceparent": f"00-{0xC3:032x}-{0xC3:016x}-01"}
    review = {"type": "review.submitted"}
    batch = [Record("slapay.measurements", 0, i, "acme", b"{}", traced) for i in range(3)]
    batch += [
        Record("slapay.reviews", 0, 7, "acme", b"{}", review),  # as a bus adapter shares one
        Record("slapay.reviews", 0, 8, "acme", b"{}", dict(review)),  # and a copy of it
        Record("slapay.reviews", 0, 9, "acme", b"{}", {}),
    ]
    with batch_span("ledger", batch):
        pass
    [span] = exporter.get_finished_spans()
    assert span.parent is not None and span.parent.span_id == 0xC3
    assert span.attributes is not None
    assert span.attributes["slapay.event_types"] == (
        "review.submitted=2",
        "sla.measurement.recorded=3",
        "unknown=1",
    )
    assert span.attributes["messaging.destination.name"] == (
        "slapay.measurements",
        "slapay.reviews",
    )
    assert span.attributes["messaging.batch.message_count"] == 6


def test_deferred_work_resumes_the_latest_cause_and_links_the_earlier(
    exporter: InMemorySpanExporter,
) -> None:
    handoff, tracer = TraceHandoff(), trace.get_tracer(__name__)
    with tracer.start_as_current_span("fold 1") as one:
        handoff.remember([("acme", "2026-10")])
    with tracer.start_as_current_span("fold 2") as two:
        handoff.remember([("acme", "2026-10"), ("acme", "2026-11")])
    exporter.clear()
    with handoff.resume(("acme", "2026-10"), "ledger.provisional"):
        pass
    with handoff.resume(("acme", "2026-10"), "ledger.provisional"):
        pass  # nothing remembered any more: a trace of its own
    resumed, alone = exporter.get_finished_spans()
    assert resumed.parent is not None
    assert resumed.parent.span_id == two.get_span_context().span_id
    assert [link.context.span_id for link in resumed.links] == [one.get_span_context().span_id]
    assert alone.parent is None
