"""Metrics: one registry per service, the exposition Prometheus reads, lag polling, and
which exporters the standard OTEL_* variables ask for."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.metrics import ConsumerMetrics, Metrics, otel_exporters
from shared.settings import ConfigurationError

OTEL_VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Sample values of one metric family, keyed by their sorted labels."""
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_two_services_in_one_process_keep_their_own_numbers() -> None:
    ingest, statements = Metrics("ingest"), Metrics("statements")
    ingest.count_measurements("json", accepted=3, duplicates=2)
    ingest.count_measurements("otlp", rejected=4)
    assert samples(ingest, "slapay_measurements_total") == {
        (("outcome", "accepted"), ("protocol", "json")): 3.0,
        (("outcome", "duplicate"), ("protocol", "json")): 2.0,
        (("outcome", "rejected"), ("protocol", "otlp")): 4.0,
    }
    assert samples(statements, "slapay_measurements_total") == {}


def test_the_exposition_names_the_service_and_the_process() -> None:
    metrics = Metrics("ledger")
    metrics.journal_entries.add(2)
    text = metrics.render().decode()
    assert 'service_name="ledger"' in text  # target_info
    assert "process_resident_memory_bytes" in text or "python_info" in text
    assert samples(metrics, "slapay_journal_entries_total") == {(): 2.0}


class LaggingConsumer:
    def __init__(self) -> None:
        self.asked = 0

    async def lag(self) -> dict[tuple[str, int], int]:
        self.asked += 1
        return {("slapay.measurements", 0): 7, ("slapay.measurements", 1): 0}


async def test_lag_is_polled_at_most_once_per_interval_and_exposed_per_partition() -> None:
    metrics, consumer = Metrics("ledger"), LaggingConsumer()
    observer = ConsumerMetrics("ledger", metrics, lag_interval_s=60)
    await observer.poll_lag(consumer)
    await observer.poll_lag(consumer)
    assert consumer.asked == 1
    assert samples(metrics, "slapay_consumer_lag") == {
        (("group", "ledger"), ("partition", "0"), ("topic", "slapay.measurements")): 7.0,
        (("group", "ledger"), ("partition", "1"), ("topic", "slapay.measurements")): 0.0,
    }


async def test_a_consumer_that_cannot_tell_its_lag_is_left_alone() -> None:
    metrics = Metrics("statements")
    await ConsumerMetrics("statements", metrics).poll_lag(object())
    assert samples(metrics, "slapay_consumer_lag") == {}


async def test_a_failing_lag_query_does_not_stop_the_consumer() -> None:
    class Broken:
        async def lag(self) -> dict[tuple[str, int], int]:
            raise OSError("database gone")

    await ConsumerMetrics("reviews", Metrics("reviews")).poll_lag(Broken())


def test_no_exporter_unless_the_environment_asks_for_one() -> None:
    assert otel_exporters("traces") == []
    assert otel_exporters("metrics") == []


def test_an_otlp_endpoint_turns_otlp_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert otel_exporters("traces") == ["otlp"]
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    assert otel_exporters("metrics") == []


def test_explicit_exporters_and_unsupported_protocols(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console, otlp")
    assert otel_exporters("traces") == ["console", "otlp"]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ConfigurationError, match="http/protobuf"):
        otel_exporters("traces")


def test_an_unknown_metrics_exporter_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    with pytest.raises(ConfigurationError, match="OTEL_METRICS_EXPORTER"):
        Metrics("ingest")
