"""The machine-readable catalogue of every event type, generated from the pydantic models."""

from __future__ import annotations

from typing import Any

from shared.events import EVENT_TYPES, Envelope


def catalogue() -> dict[str, Any]:
    """JSON Schema of the envelope and of each type's `data`, with its topic."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "slapay event catalogue",
        "envelope": Envelope.model_json_schema(),
        "events": {
            type_: {
                "topic": cls.TOPIC,
                "schema_version": 1,
                "data": cls.model_json_schema(),
            }
            for type_, cls in sorted(EVENT_TYPES.items())
        },
    }
