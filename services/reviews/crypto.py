"""Pseudonyms and comment encryption: pure functions of keys and values.

- `pseudonym` = hex(HMAC-SHA256(pepper, contract_id + "\\n" + casefold(trim(reviewer)))):
  stable per contract, unlinkable across contracts, not reversible without the pepper.
- A comment is sealed with AES-256-GCM under its reviewer's data key; the associated data
  binds the ciphertext to (contract, pseudonym, review), so it cannot be moved elsewhere.
- Data keys are stored wrapped (AES-GCM) under a key derived from the pepper (HKDF), so the
  reviews database alone reveals nothing. Deleting a reviewer's keys is the erasure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
KEY_BYTES = 32
_WRAP_INFO = b"slapay reviews: data-key wrapping v1"


class Unreadable(Exception):
    """A ciphertext that no longer opens: its key is gone, or it is not what it claims."""


@dataclass(frozen=True, slots=True)
class Sealed:
    """An encrypted comment as it travels: base64 ciphertext (with GCM tag) and nonce."""

    ciphertext: str
    nonce: str


def normalise_reviewer(reviewer: str) -> str:
    """The reviewer id as it is hashed: surrounding whitespace trimmed, case folded."""
    return reviewer.strip().casefold()


def pseudonym(pepper: bytes, contract_id: str, reviewer: str) -> str:
    """The reviewer's pseudonym in this contract (64 hex digits)."""
    message = f"{contract_id}\n{normalise_reviewer(reviewer)}".encode()
    return hmac.new(pepper, message, hashlib.sha256).hexdigest()


def fingerprint(pepper: bytes, kind: str, value: str) -> str:
    """A short keyed hash of an identifier (e.g. a token id) that must not be stored as is."""
    message = f"{kind}:{value}".encode()
    return hmac.new(pepper, message, hashlib.sha256).hexdigest()[:32]


def comment_context(contract_id: str, reviewer_pseudonym: str, review_id: str) -> bytes:
    """The associated data a comment's ciphertext is bound to."""
    return f"{contract_id}\n{reviewer_pseudonym}\n{review_id}".encode()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(key: bytes, plaintext: str, context: bytes) -> Sealed:
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext.encode(), context)
    return Sealed(_b64(ciphertext), _b64(nonce))


def open_sealed(key: bytes, sealed: Sealed, context: bytes) -> str:
    """The plaintext comment; raises `Unreadable` for a wrong key, context or a damaged text."""
    try:
        nonce, ciphertext = _unb64(sealed.nonce), _unb64(sealed.ciphertext)
        if len(nonce) != NONCE_BYTES:
            raise Unreadable("bad nonce")
        return AESGCM(key).decrypt(nonce, ciphertext, context).decode()
    except (InvalidTag, ValueError, binascii.Error) as exc:
        raise Unreadable("comment cannot be decrypted") from exc


def key_encryption_key(pepper: bytes) -> bytes:
    """The key that wraps data keys at rest, derived from the pepper."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_WRAP_INFO).derive(
        pepper
    )


def wrap_key(kek: bytes, data_key: bytes, key_id: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, data_key, key_id.encode())


def unwrap_key(kek: bytes, wrapped: bytes, key_id: str) -> bytes:
    try:
        return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], key_id.encode())
    except (InvalidTag, ValueError) as exc:
        raise Unreadable(f"data key {key_id} cannot be unwrapped") from exc


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)
