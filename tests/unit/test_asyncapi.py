"""The AsyncAPI document: valid against the official 3.0.0 schema, current on disk, and true
to the records slapay writes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shared import asyncapi
from shared.deadletters import DeadLetter
from shared.events import (
    ALL_TOPICS,
    EVENT_TYPES,
    DisputeResolved,
    TokenRevoked,
    make_event,
)
from shared.publishing import to_message

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.yaml"
OFFICIAL = ROOT / "tests" / "asyncapi" / "asyncapi-3.0.0.schema.json"
TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    generated: dict[str, Any] = json.loads(json.dumps(asyncapi.document()))
    return generated


@pytest.fixture(scope="module")
def official() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(OFFICIAL.read_text()))


def test_the_committed_document_is_current(document: dict[str, Any]) -> None:
    """Regenerate with `python -m shared.asyncapi > docs/asyncapi.yaml`."""
    assert yaml.safe_load(COMMITTED.read_text()) == document


def test_it_validates_against_the_official_schema(
    document: dict[str, Any], official: jsonschema.Draft7Validator
) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in official.iter_errors(document)]
    assert errors == []


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("operations", "send_journal", "action"), "publish"),
        (("channels", "journal", "bindings", "kafka", "topicConfiguration", "retention.ms"), "x"),
        (("components", "messages", "statement.finalized", "payload", "type"), 5),
        (("components", "messages", "statement.finalized", "bindings", "kafka", "key"), 5),
    ],
)
def test_the_official_schema_catches_a_broken_document(
    document: dict[str, Any], official: jsonschema.Draft7Validator, path: tuple[str, ...], bad: Any
) -> None:
    broken = copy.deepcopy(document)
    node = broken
    for name in path[:-1]:
        node = node[name]
    node[path[-1]] = bad
    assert not official.is_valid(broken)


def test_every_topic_and_type_is_described(document: dict[str, Any]) -> None:
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(ALL_TOPICS)
    assert set(EVENT_TYPES) <= set(document["components"]["messages"])
    for type_, cls in EVENT_TYPES.items():
        channel = document["channels"][cls.TOPIC.removeprefix("slapay.")]
        assert type_ in channel["messages"]


def _schema_of(document: dict[str, Any], pointer: str) -> jsonschema.Draft7Validator:
    """A validator for the schema at `pointer`, resolving the document's own references."""
    return jsonschema.Draft7Validator({"$ref": pointer, "components": document["components"]})


@pytest.mark.parametrize(
    "event",
    [
        make_event(
            DisputeResolved(dispute_id="d-1", decision="accepted", amount="12.50", note="ok"),
            contract_id="acme-2026",
            source="ledger-api",
        ),
        make_event(TokenRevoked(jti="j-1", revoked_by="admin:x"), contract_id="", source="ledger"),
    ],
    ids=lambda e: e.type,
)
def test_a_real_record_matches_its_message(document: dict[str, Any], event: Any) -> None:
    message = to_message(event, TRACE)
    pointer = f"#/components/messages/{event.type}"
    payload = _schema_of(document, pointer + "/payload")
    headers = _schema_of(document, pointer + "/headers")
    key = _schema_of(document, pointer + "/bindings/kafka/key")
    assert list(payload.iter_errors(json.loads(message.value))) == []
    assert list(headers.iter_errors(message.headers)) == []
    assert key.is_valid(message.key)
    assert not headers.is_valid({**message.headers, "ce_type": "other.type"})
    assert not payload.is_valid({**json.loads(message.value), "data": {"unexpected": 1}})


def test_a_real_dead_letter_matches_its_message(document: dict[str, Any]) -> None:
    letter = DeadLetter(topic="slapay.measurements", key="acme-2026", value=b"{", reason="bad")
    message = letter.to_message()
    pointer = "#/components/messages/deadletter"
    assert _schema_of(document, pointer + "/payload").is_valid(json.loads(message.value))
    assert _schema_of(document, pointer + "/headers").is_valid(message.headers)
