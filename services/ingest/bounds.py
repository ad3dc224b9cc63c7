"""How much one request may hold, checked while it is decoded, before its memory grows.

At most `MAX_BATCH` measurements per request on every endpoint. A JSON body is first
counted at C speed (its values and containers, strings left out) so that no decoder builds
millions of objects for it; a protobuf body is walked field by field, and the walk stops
as soon as a count passes its bound, before any message object is made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_BATCH = 10_000
MAX_JSON_ELEMENTS = 1_000_000
"""Values and containers in a JSON body: 10,000 measurements with 50 labels each hold about
600,000; past this bound the body is refused before it is decoded."""
MAX_PROTOBUF_ELEMENTS = 500_000
"""Embedded messages in a protobuf body (series, labels, samples, points, attributes...):
10,000 measurements with 48 labels or attributes each."""
MAX_DEPTH = 32
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


class TooLarge(ValueError):
    """A request past a bound: 413, whatever else it holds."""


def check_json_elements(body: bytes, limit: int = MAX_JSON_ELEMENTS) -> None:
    """Refuse (`TooLarge`) a JSON body of more than `limit` values and containers.

    An upper bound, counted on the body with its strings removed: every value but the last
    of a container is followed by a comma, and every container opens with a bracket."""
    if body.count(b",") + body.count(b"{") + body.count(b"[") <= limit:
        return  # even counting what strings hold, it is within the bound
    bare = _STRING.sub(b'""', body)
    elements = bare.count(b",") + bare.count(b"{") + bare.count(b"[")
    if elements > limit:
        raise TooLarge(f"the JSON body holds more than {limit} values; send smaller requests")


@dataclass(frozen=True)
class Message:
    """Which fields of a protobuf message hold embedded messages worth walking into.

    `children` maps a field number to the message it holds; `points` names the field numbers
    whose every entry is one measurement candidate (a sample, a data point)."""

    children: Mapping[int, Message | str]
    points: frozenset[int] = frozenset()


@dataclass
class Counts:
    points: int = 0
    elements: int = 0


def count_protobuf(
    raw: bytes,
    root: Message,
    schema: Mapping[str, Message],
    max_points: int = MAX_BATCH,
    max_elements: int = MAX_PROTOBUF_ELEMENTS,
) -> Counts:
    """Walk `raw` as the message `root` describes, counting points and embedded messages;
    raise `TooLarge` as soon as either passes its bound, or `ValueError` if the bytes are
    not protobuf at all (the real parser then says why)."""
    counts = Counts()
    _walk(raw, 0, len(raw), root, schema, counts, max_points, max_elements, 0)
    return counts


def _walk(
    raw: bytes,
    position: int,
    end: int,
    message: Message,
    schema: Mapping[str, Message],
    counts: Counts,
    max_points: int,
    max_elements: int,
    depth: int,
) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("protobuf nested too deeply")
    children, points = message.children, message.points
    while position < end:
        key = raw[position]  # a one-byte key and length are the common case: read inline
        position += 1
        if key & 0x80:
            key, position = _varint(raw, position - 1)
        wire = key & 7
        if wire == 2:
            length = raw[position] if position < end else 0x80
            position += 1
            if length & 0x80:
                length, position = _varint(raw, position - 1)
            start, position = position, position + length
            if position > end:
                raise ValueError("truncated protobuf")
            child = children.get(key >> 3)
            if child is None:
                continue
            counts.elements += 1
            if counts.elements > max_elements:
                raise TooLarge(f"more than {max_elements} protobuf messages in one request")
            if key >> 3 in points:
                counts.points += 1
                if counts.points > max_points:
                    raise TooLarge(f"more than {max_points} measurements in one request")
            described = schema[child] if isinstance(child, str) else child
            if described.children:
                _walk(raw, start, position, described, schema, counts, max_points,
                      max_elements, depth + 1)  # fmt: skip
        elif wire == 0:
            _, position = _varint(raw, position)
        elif wire == 1:
            position += 8
        elif wire == 5:
            position += 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not supported")
    if position != end:
        raise ValueError("truncated protobuf")


def _varint(raw: bytes, position: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if position >= len(raw):
            raise ValueError("truncated protobuf")
        byte = raw[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("protobuf varint too long")
