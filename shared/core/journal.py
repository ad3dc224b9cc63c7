"""The hash chain of journal entries (docs/architecture.md, "The journal and its hash chain").

`hash = "sha256:" + hex(sha256(prev_hash + JCS(entry without hash and prev_hash)))`, one
chain per contract, the first `prev_hash` being `"sha256:" + 64 zeros`. JCS is RFC 8785
(the `rfc8785` package), so an auditor can check a chain with their own tools.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.core.periods import PERIOD_PATTERN
from shared.core.statement import Derivation, Line, LineKind, Money

GENESIS = "sha256:" + "0" * 64
CHAIN_FIELDS = ("hash", "prev_hash")
CHAIN_PLACE = frozenset({"entry_id", "seq", *CHAIN_FIELDS})


class EntryBody(BaseModel):
    """What the ledger posts for one line: everything of an entry but its place in the
    chain. Public: it is hashed into the chain and published on the journal topic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contract_id: str
    period: Annotated[str, Field(pattern=PERIOD_PATTERN)]
    kind: LineKind
    line_id: str
    kpi: str | None = None
    amount: Money
    currency: str
    description: str
    derivation: Derivation
    events_digest: str
    terms_version: int | None = None
    corrects_period: str | None = None
    corrects_line_id: str | None = None
    dispute_id: str | None = None
    inputs: dict[str, Any]
    """The bus positions the posting had read up to, and the `cause` event's position."""
    posted_at: str
    """RFC 3339 in UTC, taken from the event that caused the posting (replay gives the same)."""

    @property
    def posted(self) -> datetime:
        return datetime.fromisoformat(self.posted_at.replace("Z", "+00:00"))

    @property
    def line(self) -> Line:
        """The statement line the entry posted."""
        return Line(
            line_id=self.line_id,
            kind=self.kind,
            kpi=self.kpi,
            amount=self.amount,
            description=self.description,
            derivation=self.derivation,
        )

    def document(self) -> dict[str, Any]:
        """The entry as JSON (what is hashed, stored and published)."""
        return self.model_dump(mode="json")


class JournalEntry(EntryBody):
    """A posted entry: its body, its place in the contract's chain, and the chain's links."""

    entry_id: str
    seq: Annotated[int, Field(ge=1)]
    prev_hash: str
    hash: str

    def body(self) -> EntryBody:
        """The entry without its place in the chain (to chain it again, elsewhere)."""
        return EntryBody.model_validate(self.model_dump(exclude=set(CHAIN_PLACE)))

    @classmethod
    def published(cls, document: Any) -> JournalEntry | None:
        """The entry a published document holds, or None if it is not one the ledger could
        have written: it must parse and serialise back to the very same canonical JSON, so
        a hash checked on the typed entry is the hash of what was published."""
        if not isinstance(document, dict):
            return None
        try:
            entry = cls.model_validate(document)
            same = rfc8785.dumps(entry.document()) == rfc8785.dumps(document)
        except (ValidationError, ValueError, TypeError, rfc8785.CanonicalizationError):
            return None
        return entry if same else None


def entry_id(contract_id: str, seq: int) -> str:
    """Deterministic, so a replay of the bus posts entries with the same ids."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"slapay:{contract_id}:journal:{seq}"))


def canonical(body: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of an entry without its chain fields."""
    return rfc8785.dumps({k: v for k, v in body.items() if k not in CHAIN_FIELDS})


def entry_hash(prev_hash: str, body: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(prev_hash.encode() + canonical(body)).hexdigest()
    return "sha256:" + digest


def chain(prev_hash: str, body: EntryBody, contract_id: str, seq: int) -> JournalEntry:
    """The entry that follows `prev_hash` as the contract's `seq`-th."""
    document = {**body.document(), "entry_id": entry_id(contract_id, seq), "seq": seq}
    return JournalEntry.model_validate(
        {**document, "prev_hash": prev_hash, "hash": entry_hash(prev_hash, document)}
    )


def chain_breaks(entries: Iterable[JournalEntry]) -> list[dict[str, str]]:
    """Every entry whose link or hash does not check out, in chain order."""
    breaks: list[dict[str, str]] = []
    expected_prev = GENESIS
    for entry in entries:
        if entry.prev_hash != expected_prev:
            breaks.append(
                {
                    "entry_id": entry.entry_id,
                    "problem": "prev_hash does not match the entry before",
                    "expected": expected_prev,
                    "found": entry.prev_hash,
                }
            )
        recomputed = entry_hash(entry.prev_hash, entry.document())
        if entry.hash != recomputed:
            breaks.append(
                {
                    "entry_id": entry.entry_id,
                    "problem": "hash does not match the entry's content",
                    "expected": recomputed,
                    "found": entry.hash,
                }
            )
        expected_prev = entry.hash
    return breaks
