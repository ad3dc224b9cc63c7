"""Pseudonyms and comment encryption (services/reviews/crypto.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from services.reviews import crypto

PEPPER = b"p" * 32


def test_the_pseudonym_is_the_pinned_hmac_of_contract_and_normalised_reviewer() -> None:
    expected = hmac.new(PEPPER, b"acme-2026\nalice@example.com", hashlib.sha256).hexdigest()
    assert crypto.pseudonym(PEPPER, "acme-2026", "alice@example.com") == expected
    assert crypto.pseudonym(PEPPER, "acme-2026", "  ALICE@Example.Com\t") == expected
    assert len(expected) == 64


def test_casefolding_goes_beyond_lowercase() -> None:
    assert crypto.pseudonym(PEPPER, "c-1", "STRASSE") == crypto.pseudonym(PEPPER, "c-1", "straße")


def test_pseudonyms_differ_by_contract_and_by_pepper() -> None:
    one = crypto.pseudonym(PEPPER, "acme-2026", "alice")
    assert one != crypto.pseudonym(PEPPER, "acme-2027", "alice")
    assert one != crypto.pseudonym(b"q" * 32, "acme-2026", "alice")
    assert one != crypto.pseudonym(PEPPER, "acme-2026", "alice2")


def test_a_sealed_comment_opens_only_with_its_key_and_context() -> None:
    key = crypto.new_data_key()
    context = crypto.comment_context("acme-2026", "ab" * 32, "review-1")
    sealed = crypto.seal(key, "Ünïcode and all ✓", context)
    assert "Ünïcode" not in sealed.ciphertext
    assert crypto.open_sealed(key, sealed, context) == "Ünïcode and all ✓"
    with pytest.raises(crypto.Unreadable):
        crypto.open_sealed(crypto.new_data_key(), sealed, context)
    moved = crypto.comment_context("acme-2026", "ab" * 32, "review-2")
    with pytest.raises(crypto.Unreadable):
        crypto.open_sealed(key, sealed, moved)
    with pytest.raises(crypto.Unreadable):
        crypto.open_sealed(key, crypto.Sealed("not base64!", sealed.nonce), context)


def test_the_same_comment_seals_differently_each_time() -> None:
    key = crypto.new_data_key()
    first = crypto.seal(key, "same", b"c")
    assert first != crypto.seal(key, "same", b"c")


def test_data_keys_are_wrapped_under_a_key_derived_from_the_pepper() -> None:
    kek = crypto.key_encryption_key(PEPPER)
    assert kek == crypto.key_encryption_key(PEPPER) and kek != PEPPER
    key = crypto.new_data_key()
    wrapped = crypto.wrap_key(kek, key, "key-1")
    assert key not in wrapped
    assert crypto.unwrap_key(kek, wrapped, "key-1") == key
    with pytest.raises(crypto.Unreadable):
        crypto.unwrap_key(kek, wrapped, "key-2")
    with pytest.raises(crypto.Unreadable):
        crypto.unwrap_key(crypto.key_encryption_key(b"q" * 32), wrapped, "key-1")


def test_token_fingerprints_are_keyed_and_short() -> None:
    mark = crypto.fingerprint(PEPPER, "token", "jti-1")
    assert len(mark) == 32 and "jti-1" not in mark
    assert mark != crypto.fingerprint(b"q" * 32, "token", "jti-1")
