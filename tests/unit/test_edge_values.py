"""Values at the edge of the calendar and of what the database holds: a ValueError or a
422, never an OverflowError or a 503 that asks for a retry that would fail the same way."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import DBAPIError

from shared.core.periods import period_bounds, period_of
from shared.web import on_database_error


@pytest.mark.parametrize(
    ("instant", "tz"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "America/New_York"),
        (datetime(9999, 12, 31, 23, tzinfo=UTC), "Asia/Tokyo"),
    ],
)
def test_an_instant_without_a_local_month_is_a_value_error(instant: datetime, tz: str) -> None:
    with pytest.raises(ValueError, match="no calendar month"):
        period_of(instant, tz)


def test_a_period_without_utc_bounds_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no bounds"):
        period_bounds("0001-01", "Asia/Tokyo")
    assert period_bounds("0001-01", "America/New_York")[0].year == 1


class DriverError(Exception):
    """What a driver raises, with the SQLSTATE Postgres answered."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


async def test_a_value_the_database_refuses_is_a_422_and_an_outage_a_503() -> None:
    nul = DBAPIError("SELECT 1", {}, DriverError("22021"))  # NUL in a text value
    refused = await on_database_error(None, nul)  # type: ignore[arg-type]
    assert refused.status_code == 422
    assert json.loads(bytes(refused.body))["status"] == 422
    gone = DBAPIError("SELECT 1", {}, DriverError("08006"))  # connection failure
    unavailable = await on_database_error(None, gone)  # type: ignore[arg-type]
    assert (unavailable.status_code, unavailable.headers["retry-after"]) == (503, "5")
