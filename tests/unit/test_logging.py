"""Structured logs: JSON lines with trace ids; no token, secret or e-mail address ever."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from shared.auth import issue_token
from shared.logging import configure_logging, redact
from tests.system import SECRET

LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Logging configured as `slapay serve` does it, into a buffer; restored afterwards."""
    saved = {
        name: (logger.handlers[:], logger.level, logger.propagate)
        for name in LOGGERS
        if (logger := logging.getLogger(name))
    }
    buffer = io.StringIO()
    configure_logging("ingest", "info", "json", stream=buffer)
    yield buffer
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.propagate = handlers, propagate
        logger.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_json_with_service_level_and_logger(stream: io.StringIO) -> None:
    logging.getLogger("services.ledger").info("folded %d events", 3, extra={"group": "ledger"})
    [line] = lines(stream)
    assert line["message"] == "folded 3 events"
    assert (line["level"], line["service"], line["logger"]) == ("info", "ingest", "services.ledger")
    assert line["group"] == "ledger"
    assert "trace_id" not in line


def test_a_line_carries_the_current_trace_and_span(stream: io.StringIO) -> None:
    tracer = TracerProvider().get_tracer(__name__)
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("shared.consuming").warning("step failed")
    [line] = lines(stream)
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert trace.get_current_span().get_span_context().is_valid is False


def test_tokens_secrets_and_personal_data_never_reach_the_log(stream: io.StringIO) -> None:
    token = issue_token(SECRET, "admin")
    log = logging.getLogger("shared.web")
    log.warning("headers %s", {"authorization": f"Bearer {token}", "accept": "*/*"})
    log.warning("raw token %s in a message", token)
    log.warning("connecting to postgresql://slapay:hunter2@db:5432/ledger")
    log.warning("review by alice@example.com", extra={"note": f"token={token}"})
    try:
        raise ValueError(f"could not verify {token}")
    except ValueError:
        log.exception("failed")
    text = stream.getvalue()
    for secret in (token, token.split(".")[1], "hunter2", "alice@example.com"):
        assert secret not in text
    assert "[redacted" in text and "[email]" in text
    assert lines(stream)[-1]["exception"].startswith("Traceback")


def test_access_lines_have_fields_and_no_client_or_query(stream: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    fmt = '%s - "%s %s HTTP/%s" %d'
    access.info(fmt, "203.0.113.9:5555", "GET", "/v1/contracts/x/statements?token=abc", "1.1", 200)
    access.info(fmt, "203.0.113.9:5555", "GET", "/healthz", "1.1", 200)
    access.info(fmt, "203.0.113.9:5555", "GET", "/metrics", "1.1", 200)
    [line] = lines(stream)
    assert line["http"] == {"method": "GET", "path": "/v1/contracts/x/statements", "status": 200}
    assert "203.0.113.9" not in stream.getvalue() and "abc" not in stream.getvalue()


def test_uvicorn_loggers_go_through_the_one_handler(stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").error("boom")
    assert lines(stream)[0]["logger"] == "uvicorn.error"
    assert all(not logging.getLogger(name).handlers for name in LOGGERS[1:])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: [redacted]"),
        ("cookie: session=abc; theme=dark", "cookie: [redacted]"),
        ("?access_token=abc&page=2", "?access_token=[redacted]&page=2"),
        ('{"password": "p4ss"}', '{"password": "[redacted]"}'),
        ("SLAPAY_REVIEWS_PEPPER=xyz", "SLAPAY_REVIEWS_PEPPER=[redacted]"),
        ("contract acme-2026 closed 2026-10", "contract acme-2026 closed 2026-10"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
