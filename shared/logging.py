"""Structured logs: one JSON object per line with the current trace and span ids, and
never a token, a secret or personal data.

`RedactingFilter` sits on the handler, so it sees every record, ours and the libraries':
it renders the message, masks bearer tokens, JWTs, `Authorization`/`Cookie` values,
`token=`/`password=`-style pairs, credentials in URLs and e-mail addresses, and turns
uvicorn's access lines into method, path (no query string) and status, without the client
address. Requests to /healthz, /readyz and /metrics are not logged.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

REDACTIONS = (
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [redacted]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted-jwt]"),
    (
        re.compile(
            r"(?i)\b((?:proxy-)?authorization|cookie|set-cookie)(['\"]?\s*[:=]\s*['\"]?)"
            r"[^'\"\n]+"
        ),
        r"\1\2[redacted]",
    ),
    (
        re.compile(
            r"(?i)\b([\w-]*(?:token|secret|password|passwd|pepper|api[_-]?key|signature))"
            r"(['\"]?\s*[:=]\s*['\"]?)[^\s'\"&,;}]+"
        ),
        r"\1\2[redacted]",
    ),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[email]"),
)
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "http"}
_RECORD_FIELDS |= {"color_message"}  # uvicorn's ANSI-coloured copy of the message


def redact(text: str) -> str:
    """`text` with every token-like value, credential and e-mail address masked."""
    for pattern, replacement in REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Renders and redacts each record's message and exception; drops health-check access
    lines. Put it on the handler, where propagated records pass too."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and not _access_fields(record):
            return False
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed call still gets logged, redacted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def _access_fields(record: logging.LogRecord) -> bool:
    """uvicorn's `(client, method, path, version, status)` as fields, client left out;
    False for the quiet paths."""
    args = record.args
    if not isinstance(args, tuple) or len(args) != 5:
        return True
    _client, method, full_path, _version, status = args
    path = str(full_path).split("?", 1)[0]
    if path in QUIET_PATHS:
        return False
    record.http = {"method": method, "path": path, "status": status}
    record.msg, record.args = f"{method} {path} {status}", None
    return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, logger, message, trace_id, span_id,
    exception, and any `extra=` fields (redacted when they are strings)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        if http := getattr(record, "http", None):
            entry["http"] = http
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(
    service: str, level: str = "warning", fmt: str | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Route every logger (uvicorn's included) through one redacting handler; `fmt` is
    `json` or `text` (default: text on a terminal, JSON elsewhere)."""
    stream = stream or sys.stderr
    fmt = fmt or ("text" if stream.isatty() else "json")
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter(service)
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    numeric = logging.getLevelName(level.upper())
    numeric = numeric if isinstance(numeric, int) else logging.WARNING
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(numeric)
    return handler
