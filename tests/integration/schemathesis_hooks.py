"""Schemathesis hooks (loaded through `SCHEMATHESIS_HOOKS`): half the time, a generated
value is swapped for one at the edge of its type, where conversions overflow and drivers
refuse bytes: years 1 and 9999 with offsets of ±14:00, ±1e308 and the largest double,
the first and last periods, and control or percent-encoded bytes in path parameters."""

from __future__ import annotations

import re
from typing import Any

import schemathesis
from hypothesis import strategies as st

INSTANTS = (
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T23:59:59-14:00",
)
NUMBERS = (1e308, -1e308, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, 10**20)
PERIODS = ("0001-01", "9999-12", "0000-01")
SEGMENTS = ("\x00", "a\x00b", "%00", "%2500", "\x01", "\n", "\x7f", "%ff", "..", "\ufffd", "é")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T")
PERIOD = re.compile(r"^\d{4}-\d{2}$")


def edged(value: Any) -> st.SearchStrategy[Any]:
    """`value`, or the same shape with some leaves at their edge."""
    if isinstance(value, dict):
        return st.fixed_dictionaries({key: edged(item) for key, item in value.items()})
    if isinstance(value, list):
        return st.tuples(*(edged(item) for item in value)).map(list)
    if isinstance(value, str) and INSTANT.match(value):
        return st.one_of(st.just(value), st.sampled_from(INSTANTS))
    if isinstance(value, str) and PERIOD.match(value):
        return st.one_of(st.just(value), st.sampled_from(PERIODS))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return st.one_of(st.just(value), st.sampled_from(NUMBERS))
    return st.just(value)


@schemathesis.hook
def flatmap_path_parameters(
    context: Any, parameters: dict[str, Any] | None
) -> st.SearchStrategy[Any]:
    if not parameters:
        return st.just(parameters)
    return st.fixed_dictionaries(
        {
            name: st.one_of(st.just(value), st.sampled_from(SEGMENTS), edged(value))
            for name, value in parameters.items()
        }
    )


@schemathesis.hook
def flatmap_query(context: Any, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    return edged(query) if query else st.just(query)


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    return edged(body)
