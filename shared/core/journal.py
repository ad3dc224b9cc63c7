"""The hash chain of journal entries (docs/architecture.md, "The journal and its hash chain").

`hash = "sha256:" + hex(sha256(prev_hash + JCS(entry without hash and prev_hash)))`, one
chain per contract, the first `prev_hash` being `"sha256:" + 64 zeros`. JCS is RFC 8785
(the `rfc8785` package), so an auditor can check a chain with their own tools.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import rfc8785

GENESIS = "sha256:" + "0" * 64
CHAIN_FIELDS = ("hash", "prev_hash")


def entry_id(contract_id: str, seq: int) -> str:
    """Deterministic, so a replay of the bus posts entries with the same ids."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"slapay:{contract_id}:journal:{seq}"))


def canonical(body: Mapping[str, Any]) -> bytes:
    """RFC 8785 canonical JSON of an entry without its chain fields."""
    return rfc8785.dumps({k: v for k, v in body.items() if k not in CHAIN_FIELDS})


def entry_hash(prev_hash: str, body: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(prev_hash.encode() + canonical(body)).hexdigest()
    return "sha256:" + digest


def chain(prev_hash: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The entry with `prev_hash` and `hash` set."""
    return {**body, "prev_hash": prev_hash, "hash": entry_hash(prev_hash, body)}


def chain_breaks(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Every entry whose link or hash does not check out, in chain order."""
    breaks: list[dict[str, str]] = []
    expected_prev = GENESIS
    for entry in entries:
        eid = str(entry.get("entry_id"))
        if entry.get("prev_hash") != expected_prev:
            breaks.append(
                {
                    "entry_id": eid,
                    "problem": "prev_hash does not match the entry before",
                    "expected": expected_prev,
                    "found": str(entry.get("prev_hash")),
                }
            )
        recomputed = entry_hash(str(entry.get("prev_hash")), entry)
        if entry.get("hash") != recomputed:
            breaks.append(
                {
                    "entry_id": eid,
                    "problem": "hash does not match the entry's content",
                    "expected": recomputed,
                    "found": str(entry.get("hash")),
                }
            )
        expected_prev = str(entry.get("hash"))
    return breaks
