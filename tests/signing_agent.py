"""A monitoring agent that signs its requests (RFC 9421, ed25519) as docs/agents.md shows."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

from shared import jsonutil

COVERED = ("@method", "@path", "content-digest")


@dataclass
class _Request:
    method: str
    url: str
    headers: dict[str, str]


class _OwnKey(HTTPSignatureKeyResolver):
    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        return self.key


@dataclass
class SigningAgent:
    """An agent with a key of its own; `listed` is how terms name it."""

    key_id: str
    party: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def listed(self) -> dict[str, str]:
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return {
            "key_id": self.key_id,
            "party": self.party,
            "public_key": base64.b64encode(raw).decode(),
        }

    def sign(
        self,
        body: bytes,
        path: str = "/v1/measurements",
        created: datetime | None = None,
        covered: tuple[str, ...] = COVERED,
    ) -> dict[str, str]:
        """The headers that sign a POST of `body` to `path`."""
        request = _Request("POST", f"http://ingest{path}", {"Content-Type": "application/json"})
        signer = HTTPMessageSigner(
            signature_algorithm=algorithms.ED25519, key_resolver=_OwnKey(self.key)
        )
        signer.sign(
            request, key_id=self.key_id, created=created, covered_component_ids=covered, body=body
        )
        return request.headers

    def signed(self, document: dict[str, Any], **options: Any) -> tuple[bytes, dict[str, str]]:
        """A JSON body and the headers that sign it."""
        body = jsonutil.dumps(document)
        return body, self.sign(body, **options)
