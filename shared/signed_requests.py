"""RFC 9421 signatures on agents' requests (docs/architecture.md, "Signed measurements").

One verifier for both sides: ingest checks a request as it arrives (its `created` within the
allowed clock skew), and the auditor checks the same request later from the
`sla.batch.signed` event that recorded it (its time already past). A signature must be
`ed25519`, cover `@path` and `content-digest` (RFC 9530, checked against the body), and
cover nothing the event does not record, so that anyone can check it offline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    algorithms,
)

from shared.core.agents import AgentKey, public_key_bytes

REQUIRED = ("@path", "content-digest")
RECORDED = frozenset({"@method", "@path", "content-digest", "content-type"})
"""What a signature may cover: what the `sla.batch.signed` event records."""
ACCEPT_SIGNATURE = 'sig1=("@method" "@path" "content-digest");alg="ed25519"'
"""What an agent should sign (the `Accept-Signature` field of RFC 9421, section 5.1)."""
_HOST = "http://slapay.invalid"  # @authority is never covered; the resolver needs a host


class BadSignature(ValueError):
    """A request whose signature is missing, malformed, or not one the terms accept."""


@dataclass(frozen=True)
class SignedRequest:
    """The parts of a request a signature can cover, and the signature itself."""

    method: str
    path: str
    content_type: str | None
    content_digest: str | None
    signature_input: str
    signature: str
    body: bytes

    @cached_property
    def digest(self) -> str:
        """`"sha256:" + hex(sha256(body))`: how measurement events name their batch."""
        return body_digest(self.body)

    def message(self) -> Any:
        headers = {
            "signature-input": self.signature_input,
            "signature": self.signature,
            **({"content-digest": self.content_digest} if self.content_digest else {}),
            **({"content-type": self.content_type} if self.content_type is not None else {}),
        }
        return _Message(self.method, _HOST + self.path, headers)


@dataclass(frozen=True)
class _Message:
    method: str
    url: str
    headers: dict[str, str]


def body_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class _Keys(HTTPSignatureKeyResolver):
    def __init__(self, keys: Mapping[str, AgentKey]) -> None:
        self._keys = keys

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        agent = self._keys.get(key_id)
        if agent is None:
            return None
        return Ed25519PublicKey.from_public_bytes(public_key_bytes(agent.public_key))


class _Offline(HTTPMessageVerifier):
    """A verifier for a request recorded earlier: its `created` and `expires` are history."""

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


def verify(request: SignedRequest, keys: Mapping[str, AgentKey], skew_s: float | None) -> AgentKey:
    """The agent key that signed `request`, or `BadSignature` saying why not. With `skew_s`,
    `created` must lie within that many seconds of now; without, time is not checked."""
    verifier = (
        _Offline(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(keys))
        if skew_s is None
        else HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(keys))
    )
    if skew_s is not None:
        verifier.max_clock_skew = timedelta(seconds=skew_s)
    extra = sorted(_covered(request.signature_input) - RECORDED)
    if extra:
        raise BadSignature(
            f"the signature covers {', '.join(extra)}; cover only "
            f"{', '.join(sorted(RECORDED))}, so that it can be checked later from the bus"
        )
    try:
        results = verifier.verify(
            request.message(),
            max_age=None if skew_s is None else timedelta(0),
            require_components=REQUIRED,
            body=request.body,
        )
    except HTTPMessageSignaturesException as exc:
        raise BadSignature(_reason(exc)) from exc
    return keys[str(results[0].parameters["keyid"])]


def _covered(signature_input: str) -> set[str]:
    """The components a `Signature-Input` field names (every label's)."""
    try:
        parsed: Any = http_sf.parse(signature_input.encode(), tltype="dictionary")
    except (ValueError, UnicodeError) as exc:
        raise BadSignature(f"malformed Signature-Input: {exc}") from exc
    names: set[str] = set()
    for member, _ in parsed.values():
        if isinstance(member, list):
            names.update(str(name) for name, _ in member)
    return names


def _reason(exc: Exception) -> str:
    text = str(exc)
    if text == "Unable to resolve verification key":
        return "the key that signed this request is not one the contract's terms list"
    return text or "the signature does not verify over this request with the key it names"
