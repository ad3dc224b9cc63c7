"""Structural schemas for the operator resources in deploy/k8s (no CRD is available offline).

Each is a strict subset of the operator's published schema — Strimzi `kafka.strimzi.io/v1`
(Kafka, KafkaNodePool, KafkaTopic) and CloudNativePG `postgresql.cnpg.io/v1` (Cluster) —
written from their CRDs for the fields slapay sets: types, enums, required fields, and no
unknown fields at the levels we write, so a typo or a misplaced key fails the test. A field
we start using must be added here, checked against the operator's CRD.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
OPEN: Schema = {"type": "object"}
QUANTITY: Schema = {"type": ["string", "integer"]}


def strict(properties: dict[str, Schema], *required: str) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def array(items: Schema, min_items: int = 0) -> Schema:
    return {"type": "array", "items": items, "minItems": min_items}


def resource(kind: str, api_version: str, spec: Schema) -> Schema:
    metadata = {"type": "object", "required": ["name"], "properties": {"name": STRING}}
    return strict(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": metadata,
            "spec": spec,
        },
        "apiVersion",
        "kind",
        "metadata",
        "spec",
    )


RESOURCES = strict(
    {
        "requests": {"type": "object", "additionalProperties": QUANTITY},
        "limits": {"type": "object", "additionalProperties": QUANTITY},
    }
)
VOLUME = strict(
    {
        "id": {"type": "integer", "minimum": 0},
        "type": {"enum": ["ephemeral", "persistent-claim"]},
        "size": STRING,
        "class": STRING,
        "deleteClaim": BOOLEAN,
        "kraftMetadata": {"enum": ["shared"]},
    },
    "type",
)
STORAGE = strict(
    {"type": {"enum": ["jbod", "ephemeral", "persistent-claim"]}, "volumes": array(VOLUME, 1)},
    "type",
)
LISTENER = strict(
    {
        "name": {"type": "string", "pattern": "^[a-z0-9]{1,11}$"},
        "port": {"type": "integer", "minimum": 9092},
        "type": {
            "enum": ["internal", "route", "loadbalancer", "nodeport", "ingress", "cluster-ip"]
        },
        "tls": BOOLEAN,
        "networkPolicyPeers": array(OPEN),
    },
    "name",
    "port",
    "type",
    "tls",
)
STRIMZI = "kafka.strimzi.io/v1"
CNPG = "postgresql.cnpg.io/v1"

SCHEMAS: dict[tuple[str, str], Schema] = {
    (STRIMZI, "KafkaNodePool"): resource(
        "KafkaNodePool",
        STRIMZI,
        strict(
            {
                "replicas": {"type": "integer", "minimum": 0},
                "roles": array({"enum": ["controller", "broker"]}, 1),
                "storage": STORAGE,
                "resources": RESOURCES,
            },
            "replicas",
            "roles",
            "storage",
        ),
    ),
    (STRIMZI, "Kafka"): resource(
        "Kafka",
        STRIMZI,
        strict(
            {
                "kafka": strict(
                    {
                        "version": STRING,
                        "metadataVersion": STRING,
                        "listeners": array(LISTENER, 1),
                        "config": OPEN,
                    },
                    "listeners",
                ),
                "entityOperator": strict({"topicOperator": OPEN, "userOperator": OPEN}),
            },
            "kafka",
        ),
    ),
    (STRIMZI, "KafkaTopic"): resource(
        "KafkaTopic",
        STRIMZI,
        strict(
            {
                "topicName": STRING,
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": OPEN,
            }
        ),
    ),
    (CNPG, "Cluster"): resource(
        "Cluster",
        CNPG,
        strict(
            {
                "instances": {"type": "integer", "minimum": 1},
                "imageName": STRING,
                "primaryUpdateStrategy": {"enum": ["unsupervised", "supervised"]},
                "storage": strict({"size": STRING, "storageClass": STRING}),
                "bootstrap": strict(
                    {"initdb": strict({"database": STRING, "owner": STRING, "secret": OPEN})}
                ),
                "postgresql": strict(
                    {"parameters": {"type": "object", "additionalProperties": STRING}}
                ),
                "resources": RESOURCES,
                "affinity": strict(
                    {
                        "enablePodAntiAffinity": BOOLEAN,
                        "topologyKey": STRING,
                        "podAntiAffinityType": {"enum": ["preferred", "required"]},
                    }
                ),
            },
            "instances",
        ),
    ),
}
