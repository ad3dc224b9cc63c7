"""The AsyncAPI 3.0 document of every topic and event type, generated from the event models.

Each type is a message: its payload is the envelope with that type's `data` schema, its Kafka
key is the `contract_id`, its headers are `type`, `traceparent` and the CloudEvents ones
(`shared/cloudevents.py`). The ledger serves it at `GET /v1/events/asyncapi.json`, and
`docs/asyncapi.yaml` is this module's output: `python -m shared.asyncapi > docs/asyncapi.yaml`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from shared import cloudevents
from shared.events import (
    ALL_TOPICS,
    CONTRACT_ID_PATTERN,
    EVENT_TYPES,
    TOPIC_DEADLETTER,
    Envelope,
    EventData,
    TokenRevoked,
)

ASYNCAPI = "3.0.0"
KAFKA_BINDING = "0.5.0"
SCHEMAS = "#/components/schemas/"
TRACEPARENT = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
NO_CONTRACT = {TokenRevoked.TYPE}
"""Types not about one contract: an empty key, and no `ce_subject`."""

SUMMARIES = {
    "contract.terms.agreed": "A contract's terms were agreed, or revised from a later period on.",
    "period.close.requested": "A party asked to close a period; the ledger closes it.",
    "dispute.opened": "A party disputed a line of a final statement.",
    "dispute.resolved": "An admin resolved a dispute; an accepted one brings an adjustment.",
    "sla.measurement.recorded": "A monitoring agent's measurement of a KPI.",
    "review.submitted": "A customer's review (personal data only as ciphertext).",
    "reviewer.erased": "A reviewer's personal data was made unreadable; ratings still count.",
    "journal.entry.posted": "A hash-chained entry of the payment journal.",
    "statement.provisional": "The running statement of an open period, and its breached tickets.",
    "statement.finalized": "The signed, final statement of a closed period, and its breached "
    "tickets (beside it, unsigned).",
    "token.revoked": "An admin revoked a token; every service refuses it.",
}

DESCRIPTION = """\
Every event slapay records, on Kafka (or the embedded SQL log, which keeps the same
promises). Records of one contract share a key, the `contract_id`, so they keep their order.
Event topics are kept forever: a subscriber may replay from offset 0.

Every record carries CloudEvents 1.0 binary-mode headers (`ce_specversion`, `ce_id` =
`event_id`, `ce_type`, `ce_source` = the producing service, `ce_time` = `occurred_at`,
`ce_subject` = `contract_id`, and `content-type`), so any CloudEvents SDK reads it; the
record's value, the envelope, is the event's data. A consumer dedupes by `event_id`:
delivery is at least once.
"""


def document() -> dict[str, Any]:
    """The AsyncAPI document (JSON-ready)."""
    schemas: dict[str, Any] = {}
    schemas["Envelope"] = _schema(Envelope, schemas)
    messages: dict[str, Any] = {}
    for type_, cls in sorted(EVENT_TYPES.items()):
        schemas[cls.__name__] = _schema(cls, schemas)
        messages[type_] = _message(type_, cls)
    schemas["DeadLetter"] = DEAD_LETTER
    messages["deadletter"] = _dead_letter_message()
    channels, operations = {}, {}
    for topic in ALL_TOPICS:
        name = topic.removeprefix("slapay.")
        types = [t for t, cls in sorted(EVENT_TYPES.items()) if cls.TOPIC == topic]
        if topic == TOPIC_DEADLETTER:
            types = ["deadletter"]
        channels[name] = _channel(topic, types)
        operations[f"send_{name}"] = {
            "action": "send",
            "title": f"slapay writes {topic}",
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{t}"} for t in types],
        }
    return {
        "asyncapi": ASYNCAPI,
        "info": {
            "title": "slapay events",
            "version": "1.0.0",
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": cloudevents.CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The cluster `SLAPAY_BUS=kafka://host:port` names.",
                "variables": {"bootstrap": {"default": "localhost:9092"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def _schema(model: type[Envelope] | type[EventData], schemas: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON Schema; nested models go to `components.schemas`, referenced there."""
    schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
    schemas.update(schema.pop("$defs", {}))
    return schema


def _message(type_: str, cls: type[EventData]) -> dict[str, Any]:
    envelope = Envelope.model_json_schema()
    properties = {
        **envelope["properties"],
        "type": {"type": "string", "const": type_},
        "data": {"$ref": SCHEMAS + cls.__name__},
    }
    if type_ not in NO_CONTRACT:
        properties["contract_id"] = {"type": "string", "pattern": CONTRACT_ID_PATTERN}
    summary = SUMMARIES.get(type_) or " ".join((cls.__doc__ or "").split("\n\n")[0].split())
    return {
        "name": type_,
        "title": cls.__name__,
        **({"summary": summary} if summary else {}),
        "contentType": cloudevents.CONTENT_TYPE,
        "headers": _headers(type_),
        "payload": {**envelope, "title": f"{cls.__name__} envelope", "properties": properties},
        "correlationId": {
            "description": "The event id: a consumer dedupes by it.",
            "location": "$message.header#/ce_id",
        },
        "bindings": {"kafka": {"key": _key(type_), "bindingVersion": KAFKA_BINDING}},
    }


def _key(type_: str) -> dict[str, Any]:
    if type_ in NO_CONTRACT:
        return {"type": "string", "const": "", "description": "empty: about no one contract"}
    return {
        "type": "string",
        "pattern": CONTRACT_ID_PATTERN,
        "description": "the contract_id: one contract's records keep their order",
    }


def _headers(type_: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "type": {"type": "string", "const": type_, "description": "the event type"},
        "traceparent": {
            "type": "string",
            "pattern": TRACEPARENT,
            "description": "W3C trace context of the request that caused the event",
        },
        "ce_specversion": {"type": "string", "const": cloudevents.SPECVERSION},
        "ce_id": {"type": "string", "format": "uuid", "description": "= the event_id"},
        "ce_type": {"type": "string", "const": type_},
        "ce_source": {
            "type": "string",
            "const": cloudevents.SOURCES[type_],
            "description": "the service that produced the record",
        },
        "ce_time": {
            "type": "string",
            "format": "date-time",
            "description": "= occurred_at (RFC 3339, UTC)",
        },
        "content-type": {"type": "string", "const": cloudevents.CONTENT_TYPE},
    }
    required = ["type", "ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time"]
    if type_ not in NO_CONTRACT:
        properties["ce_subject"] = {
            "type": "string",
            "pattern": CONTRACT_ID_PATTERN,
            "description": "= the contract_id",
        }
        required.append("ce_subject")
    return {"type": "object", "properties": properties, "required": [*required, "content-type"]}


DEAD_LETTER: dict[str, Any] = {
    "type": "object",
    "title": "DeadLetter",
    "description": "A record a consumer could not parse or apply, with the reason; the "
    "stream went on without it.",
    "properties": {
        "topic": {"type": "string", "description": "where the record was read"},
        "partition": {"type": ["integer", "null"]},
        "offset": {"type": ["integer", "null"]},
        "contract_id": {"type": "string"},
        "event_id": {"type": ["string", "null"]},
        "measurement_id": {"type": ["string", "null"]},
        "group": {"type": ["string", "null"], "description": "the consumer group"},
        "kind": {"type": "string", "description": "unreadable, poison, or a refusal"},
        "reason": {"type": "string", "maxLength": 2000},
        "dead_lettered_at": {"type": "string", "format": "date-time"},
        "value": {"type": "string", "description": "the record's value, as UTF-8 text"},
    },
    "required": ["topic", "contract_id", "kind", "reason", "dead_lettered_at", "value"],
}


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": "deadletter",
        "title": "DeadLetter",
        "summary": "A record left out of a stream, and why (not a CloudEvent).",
        "contentType": cloudevents.CONTENT_TYPE,
        "headers": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "const": "deadletter"},
                "source-topic": {"type": "string"},
                "reason": {"type": "string", "description": "the kind"},
            },
            "required": ["type", "source-topic", "reason"],
        },
        "payload": {"$ref": SCHEMAS + "DeadLetter"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "the record's own key"},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _channel(topic: str, types: list[str]) -> dict[str, Any]:
    return {
        "address": topic,
        "title": topic,
        "messages": {t: {"$ref": f"#/components/messages/{t}"} for t in types},
        "bindings": {
            "kafka": {
                "topic": topic,
                "topicConfiguration": {"retention.ms": -1},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def main() -> None:
    """Print the document as YAML (PyYAML, from the dev extras), or JSON with `--json`."""
    if "--json" in sys.argv[1:]:
        print(json.dumps(document(), indent=2))
        return
    import yaml

    class Dumper(yaml.SafeDumper):
        """Multi-line text as a literal block, as it reads in the source."""

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    print("# Generated by `python -m shared.asyncapi`: do not edit by hand.")
    print(
        yaml.dump(document(), Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100), end=""
    )


if __name__ == "__main__":
    main()
