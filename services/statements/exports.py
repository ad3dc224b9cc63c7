"""A statement as CSV (one row per line); which of JSON, HTML and CSV a client accepts.

The CSV renders the statement JSON, nothing more: amounts stay the decimal strings the
ledger posted, numbers of derivations are written as in the JSON (RFC 8785 form), and the
full derivation travels in the last column.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import rfc8785
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from services.statements import printable
from shared import signing
from shared.web import Problem

Format = Literal["json", "csv", "html"]
NO_STORE = "no-store"  # a statement is private: no browser or proxy cache keeps it
MEDIA_TYPES: dict[str, Format] = {
    "application/json": "json",
    "text/html": "html",
    "text/csv": "csv",
}
CSV_COLUMNS = (
    "contract_id",
    "period",
    "status",
    "terms_version",
    "currency",
    "line_id",
    "kind",
    "kpi",
    "amount",
    "description",
    "aggregation",
    "objective",
    "value",
    "target",
    "tier_percent",
    "events",
    "events_digest",
    "reason",
    "derivation",
)
_TEXT_COLUMNS = {"line_id", "kind", "kpi", "description", "aggregation", "reason", "objective"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def negotiate(accept: str | None) -> Format | None:
    """The best of JSON, HTML and CSV for an `Accept` header (RFC 9110 §12.5.1): each gets
    the q of the most specific range that matches it; the highest q wins, then the more
    specific match, then that order. None when nothing offered is acceptable."""
    if not accept or not accept.strip():
        return "json"
    ranges = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for name, _, value in (p.partition("=") for p in params):
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), q))
    best: tuple[tuple[float, int, int], Format] | None = None
    for order, (candidate, fmt) in enumerate(MEDIA_TYPES.items()):
        matches = [(_specificity(m, candidate), q) for m, q in ranges if _specificity(m, candidate)]
        if not matches:
            continue
        specificity, q = max(matches)
        key = (q, specificity, -order)
        if q > 0 and (best is None or key > best[0]):
            best = (key, fmt)
    return best[1] if best else None


def _specificity(media_range: str, media_type: str) -> int:
    if media_range == media_type:
        return 3
    if media_range == media_type.partition("/")[0] + "/*":
        return 2
    return 1 if media_range == "*/*" else 0


def number(value: Any) -> str:
    """A JSON number as RFC 8785 writes it (empty for None)."""
    return "" if value is None else rfc8785.dumps(value).decode()


def _text(value: Any) -> str:
    """A text cell that a spreadsheet will not run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_rows(statement: Mapping[str, Any]) -> list[list[str]]:
    """The header and one row per line, in `CSV_COLUMNS` order."""
    rows = [list(CSV_COLUMNS)]
    for line in statement.get("lines", []):
        derivation = line.get("derivation") or {}
        cells = {
            "contract_id": statement.get("contract_id"),
            "period": statement.get("period"),
            "status": statement.get("status"),
            "terms_version": number(statement.get("terms_version")),
            "currency": statement.get("currency"),
            "line_id": line.get("line_id"),
            "kind": line.get("kind"),
            "kpi": line.get("kpi"),
            "amount": line.get("amount"),
            "description": line.get("description"),
            "aggregation": derivation.get("aggregation"),
            "objective": derivation.get("objective"),
            "value": number(derivation.get("value")),
            "target": number(derivation.get("target")),
            "tier_percent": number(derivation.get("tier_percent")),
            "events": number(derivation.get("events")),
            "events_digest": derivation.get("events_digest"),
            "reason": derivation.get("reason"),
            "derivation": rfc8785.dumps(derivation).decode(),
        }
        rows.append(
            [
                _text(cells[c]) if c in _TEXT_COLUMNS else "" if cells[c] is None else str(cells[c])
                for c in CSV_COLUMNS
            ]
        )
    return rows


def to_csv(statement: Mapping[str, Any]) -> str:
    """RFC 4180 CSV (CRLF line ends, quoted where needed)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(csv_rows(statement))
    return out.getvalue()


def filename(statement: Mapping[str, Any], extension: str) -> str:
    base = f"{statement.get('contract_id')}-{statement.get('period')}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", base) + f".{extension}"


def respond(request: Request, statement: Mapping[str, Any], wanted: Format | None) -> Any:
    """The statement in the format asked for (`?format=` wins over `Accept`): the JSON
    document itself, or a CSV / printable HTML response; 406 if none is acceptable."""
    fmt = wanted or negotiate(request.headers.get("accept"))
    if fmt is None:
        raise Problem(
            406,
            "Not acceptable",
            "a statement is available as application/json, text/html or text/csv",
        )
    if fmt == "json":
        return dict(statement)
    if fmt == "csv":
        return Response(
            to_csv(statement),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{filename(statement, "csv")}"',
                "Cache-Control": NO_STORE,
                "Vary": "Accept",
            },
        )
    keyring = request.app.state.keyring
    page = printable.to_html(
        statement,
        signature_check=signature_check(keyring, statement),
        keys_url=keys_url(request.app.state.runtime.settings.public_url),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": printable.PRINT_CSP,
            "Content-Disposition": f'inline; filename="{filename(statement, "html")}"',
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": NO_STORE,
            "Vary": "Accept",
        },
    )


def keys_url(public_url: str | None) -> str:
    """Where the public keys are: under `SLAPAY_PUBLIC_URL` when it is set, else the path on
    this service; never built from the request's Host header, which the client chooses."""
    return (public_url.rstrip("/") if public_url else "") + signing.KEYS_PATH


def signature_check(keyring: signing.Keyring, statement: Mapping[str, Any]) -> str:
    """What checking the statement's signature with this service's keys says."""
    if statement.get("status") != "final":
        return "not signed: only final statements are signed"
    try:
        kid = keyring.verify(statement)
    except signing.SignatureInvalid as exc:
        return f"INVALID: {exc}"
    return f"valid, signed by key {kid}"


OPENAPI_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The statement: JSON (default), CSV (`Accept: text/csv` or "
        "`?format=csv`, one row per line) or a printable HTML page (`text/html`).",
        "content": {
            "application/json": {},
            "text/csv": {"schema": {"type": "string"}},
            "text/html": {"schema": {"type": "string"}},
        },
    },
    406: {"description": "None of JSON, CSV and HTML is acceptable"},
}
