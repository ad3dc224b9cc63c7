"""Whose measurements a request carries: the RFC 9421 signature a contract's terms require,
checked against the keys of each contract's latest terms (docs/architecture.md, "Signed
measurements")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Request

from services.ingest.contracts import ContractBook, DoorTerms
from shared.core.agents import AgentKey, Party
from shared.signed_requests import ACCEPT_SIGNATURE, BadSignature, SignedRequest, verify
from shared.web import Problem


@dataclass(frozen=True)
class Signer:
    """A verified request: the key that signed it, and that key's party in each contract."""

    request: SignedRequest
    key_id: str
    parties: dict[str, Party]


def signed_request(request: Request, body: bytes) -> SignedRequest | None:
    """The request's signature and what it may cover; None when it carries no signature."""
    headers = request.headers
    if "signature" not in headers and "signature-input" not in headers:
        return None
    raw_path = request.scope.get("raw_path")  # as sent: percent-escapes kept, as @path has them
    path = raw_path.decode("latin-1").partition("?")[0] if raw_path else request.url.path
    return SignedRequest(
        method=request.method,
        path=path,
        content_type=headers.get("content-type"),
        content_digest=", ".join(headers.getlist("content-digest")) or None,
        signature_input=", ".join(headers.getlist("signature-input")),
        signature=", ".join(headers.getlist("signature")),
        body=body,
    )


def signer_of(
    book: ContractBook, signed: SignedRequest | None, contract_ids: set[str], skew_s: float
) -> Signer | None:
    """The signer of a request for these contracts (None: unsigned, and none requires a
    signature); `BadSignature` for an unsigned request to a contract that requires one, or
    a signature that does not verify with a key every contract's latest terms list.
    Contracts not known here are left to the door."""
    latest = {c: found.versions[-1] for c in contract_ids if (found := book.get(c))}
    if signed is None:
        requiring = sorted(c for c, terms in latest.items() if terms.require_signed)
        if requiring:
            raise BadSignature(
                f"the terms of {', '.join(requiring)} require each request to be signed "
                "(RFC 9421, ed25519, covering @path and content-digest)"
            )
        return None
    key = verify(signed, accepted_keys(latest.values()), skew_s)
    parties = {c: _key(terms, key.key_id).party for c, terms in latest.items()}
    return Signer(signed, key.key_id, parties)


def accepted_keys(versions: Iterable[DoorTerms]) -> dict[str, AgentKey]:
    """The keys every one of these terms lists (the same key under the same id)."""
    found: dict[str, AgentKey] | None = None
    for terms in versions:
        listed = {agent.key_id: agent for agent in terms.agents}
        found = (
            listed
            if found is None
            else {
                key_id: agent
                for key_id, agent in found.items()
                if key_id in listed and listed[key_id].public_key == agent.public_key
            }
        )
    return found or {}


def refused(exc: BadSignature, advice: str = "") -> Problem:
    """The 401 for a request a contract's terms do not accept as signed; nothing published."""
    return Problem(
        401,
        "Signature refused",
        f"{exc}; nothing was published{advice}",
        headers={"Accept-Signature": ACCEPT_SIGNATURE},
    )


def _key(terms: DoorTerms, key_id: str) -> AgentKey:
    return next(agent for agent in terms.agents if agent.key_id == key_id)
