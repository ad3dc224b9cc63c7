"""A survey tool's CSV export, validated row by row before anything is imported.

Columns (header names are trimmed and case-insensitive): `reviewer`, `rating`, `comment`,
`submitted_at` (ISO 8601 with a time zone), and optionally `communication`, `usefulness`,
`reliability`. Other columns are ignored and named in the reply. Errors never echo a
cell's value: a reviewer id or a comment must not end up in a response or a log.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.reviews.models import DIMENSIONS, MAX_COMMENT, ReviewerId, Score
from shared.events import AwareDatetime
from shared.settings import DEFAULT_MAX_CLOCK_SKEW_S

REQUIRED = ("reviewer", "rating", "comment", "submitted_at")
DEFAULT_SKEW = timedelta(seconds=DEFAULT_MAX_CLOCK_SKEW_S)


class MalformedCsv(ValueError):
    """The body is not readable CSV text (not UTF-8, a NUL byte, a broken quote)."""


class InvalidCsv(ValueError):
    """Readable CSV with bad rows or columns; `problems` lists every one of them."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the CSV")
        self.problems = problems


class ImportRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reviewer: ReviewerId
    rating: Score
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)
    submitted_at: AwareDatetime
    dimensions: dict[str, Score] = Field(default_factory=dict)

    @field_validator("comment")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None


@dataclass(frozen=True)
class ParsedCsv:
    rows: list[ImportRow]
    ignored_columns: list[str]


def parse_csv(
    body: bytes, now: datetime, max_rows: int, skew: timedelta = DEFAULT_SKEW
) -> ParsedCsv:
    """Every row valid, or `InvalidCsv` naming each bad row (1-based, header excluded)."""
    try:
        text = body.decode("utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        table = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MalformedCsv(f"not readable as UTF-8 CSV: {type(exc).__name__}") from exc
    if not table:
        raise InvalidCsv([{"row": 0, "errors": [{"field": None, "msg": "the file is empty"}]}])
    header = [name.strip().casefold() for name in table[0]]
    _check_header(header)
    records = [row for row in table[1:] if any(cell.strip() for cell in row)]
    if not records:
        raise InvalidCsv([{"row": 0, "errors": [{"field": None, "msg": "no data rows"}]}])
    if len(records) > max_rows:
        message = f"{len(records)} rows; at most {max_rows} per import"
        raise InvalidCsv([{"row": 0, "errors": [{"field": None, "msg": message}]}])
    rows, problems = [], []
    for number, record in enumerate(records, start=1):
        try:
            rows.append(_row(header, record, now + skew))
        except _BadRow as exc:
            problems.append({"row": number, "errors": exc.errors})
    if problems:
        raise InvalidCsv(problems)
    known = {*REQUIRED, *DIMENSIONS}
    return ParsedCsv(rows, sorted({name for name in header if name not in known}))


def _check_header(header: list[str]) -> None:
    errors = [
        {"field": name, "msg": "missing column"} for name in REQUIRED if name not in header
    ] + [
        {"field": name, "msg": "repeated column"}
        for name in sorted(set(header))
        if header.count(name) > 1 and name in (*REQUIRED, *DIMENSIONS)
    ]
    if errors:
        raise InvalidCsv([{"row": 0, "errors": errors}])


class _BadRow(Exception):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("bad row")
        self.errors = errors


def _row(header: list[str], record: list[str], latest: datetime) -> ImportRow:
    if len(record) != len(header):
        message = f"{len(record)} fields where the header has {len(header)}"
        raise _BadRow([{"field": None, "msg": message}])
    cells = dict(zip(header, record, strict=True))
    errors: list[dict[str, Any]] = []
    rating = _score(cells["rating"], "rating", errors, required=True)
    dimensions: dict[str, int] = {}
    for name in DIMENSIONS:
        value = _score(cells.get(name, ""), name, errors, required=False)
        if value is not None:
            dimensions[name] = value
    try:
        row = ImportRow.model_validate(
            {
                "reviewer": cells["reviewer"],
                "rating": rating or 1,  # a bad rating is reported above; check the rest
                "comment": cells["comment"],
                "submitted_at": cells["submitted_at"].strip(),
                "dimensions": dimensions,
            }
        )
    except ValidationError as exc:
        errors += [_error(e) for e in exc.errors() if e["loc"][:1] != ("rating",)]
        raise _BadRow(errors) from exc
    if row.submitted_at > latest:
        errors.append({"field": "submitted_at", "msg": "lies ahead of our clock"})
    if errors:
        raise _BadRow(errors)
    return row


def _score(cell: str, name: str, errors: list[dict[str, Any]], *, required: bool) -> int | None:
    text = cell.strip()
    if not text:
        if required:
            errors.append({"field": name, "msg": "required"})
        return None
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 5:
        errors.append({"field": name, "msg": "must be a whole number from 1 to 5"})
        return None
    return int(text)


def _error(error: Any) -> dict[str, Any]:
    field = ".".join(str(part) for part in error.get("loc", ())) or None
    return {"field": field, "msg": str(error.get("msg", ""))}
