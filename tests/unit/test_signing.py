"""Signed statements: what is signed, tamper detection, key ids and rotation, key files."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared import signing
from shared.settings import ConfigurationError
from tests.system import make_settings

STATEMENT: dict[str, Any] = {
    "contract_id": "acme-2026",
    "period": "2026-09",
    "status": "final",
    "terms_version": 1,
    "currency": "EUR",
    "total": "9000.00",
    "lines": [
        {
            "line_id": "acme-2026:2026-09:sla_credit:availability",
            "kind": "sla_credit",
            "kpi": "availability",
            "amount": "-1000.00",
            "description": "availability below target",
            "derivation": {"aggregation": "mean", "value": 0.995, "target": 0.999, "events": 1000},
        }
    ],
    "entries": [{"entry_id": "e1", "hash": "sha256:ab", "prev_hash": "sha256:00"}],
}


def keyring() -> signing.Keyring:
    return signing.Keyring.of(Ed25519PrivateKey.generate())


def test_a_signed_statement_verifies_with_the_signing_key() -> None:
    ring = keyring()
    signed = ring.sign(STATEMENT)
    assert signed["signature"]["alg"] == "EdDSA"
    assert signed["signature"]["kid"] == ring.active
    assert ring.verify(signed) == ring.active
    assert {k: v for k, v in signed.items() if k != "signature"} == STATEMENT


def test_the_signature_covers_the_jcs_of_the_statement_without_signature_and_disputes() -> None:
    ring = keyring()
    signed = ring.sign(STATEMENT)
    assert signing.message(signed) == rfc8785.dumps(STATEMENT)
    # Any tool can check it: raw Ed25519 over those bytes, key and signature in base64url.
    jwk = ring.jwks()["keys"][0]
    public = Ed25519PublicKey.from_public_bytes(signing.unb64url(jwk["x"]))
    public.verify(signing.unb64url(signed["signature"]["value"]), rfc8785.dumps(STATEMENT))
    # Member order and whitespace do not matter; the live dispute list is not signed.
    reordered = json.loads(json.dumps(dict(reversed(list(signed.items()))), indent=3))
    assert ring.verify({**reordered, "disputes": [{"dispute_id": "d1", "status": "open"}]})


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s.update(total="9999.00"),
        lambda s: s["lines"][0].update(amount="-10.00"),
        lambda s: s["lines"][0]["derivation"].update(value=0.9999),
        lambda s: s.update(note="added after signing"),
        lambda s: s.pop("entries"),
        lambda s: s["signature"].update(value=s["signature"]["value"][::-1]),
        lambda s: s["signature"].update(value="not base64!"),
    ],
)
def test_any_change_breaks_the_signature(tamper: Any) -> None:
    ring = keyring()
    signed = json.loads(json.dumps(ring.sign(STATEMENT)))
    tamper(signed)
    with pytest.raises(signing.SignatureInvalid):
        ring.verify(signed)


def test_unsigned_unknown_key_and_other_algorithms_are_refused() -> None:
    ring, other = keyring(), keyring()
    with pytest.raises(signing.SignatureInvalid, match="no signature"):
        ring.verify(STATEMENT)
    with pytest.raises(signing.SignatureInvalid, match="not among the known keys"):
        ring.verify(other.sign(STATEMENT))
    forged = {**ring.sign(STATEMENT)}
    forged["signature"] = {**forged["signature"], "alg": "none"}
    with pytest.raises(signing.SignatureInvalid, match="algorithm"):
        ring.verify(forged)


def test_key_ids_are_rfc_7638_thumbprints() -> None:
    # RFC 8037, appendix A.2 and A.3: the example Ed25519 key and its thumbprint.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    key = Ed25519PublicKey.from_public_bytes(signing.unb64url(x))
    assert signing.key_id(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rotation_keeps_old_statements_verifiable_by_key_id() -> None:
    first = signing.private_pem(Ed25519PrivateKey.generate())
    old = signing.parse_bundle(first)
    signed_before = old.sign(STATEMENT)
    rotated = signing.rotate_bundle(first)
    assert rotated.count(b"PRIVATE KEY-----") == 2  # BEGIN and END of the one new key
    new = signing.parse_bundle(rotated)
    assert new.active != old.active
    signed_after = new.sign(STATEMENT)
    assert signed_after["signature"]["kid"] == new.active
    published = signing.keys_from_jwks(json.loads(json.dumps(new.jwks())))
    assert list(published) == [new.active, old.active]
    assert signing.verify(signed_before, published) == old.active
    assert signing.verify(signed_after, published) == new.active
    statuses = {k["kid"]: k["status"] for k in new.jwks()["keys"]}
    assert statuses == {new.active: "active", old.active: "retired"}
    # A key removed from the published set no longer verifies what it signed.
    with pytest.raises(signing.SignatureInvalid):
        signing.verify(signed_before, {new.active: published[new.active]})


def test_a_public_keyring_publishes_and_verifies_but_cannot_sign() -> None:
    ring = keyring()
    public = ring.public()
    assert public.jwks() == ring.jwks()
    assert public.verify(ring.sign(STATEMENT)) == ring.active
    with pytest.raises(ConfigurationError):
        public.sign(STATEMENT)


def test_embedded_mode_creates_one_private_key_file_in_the_data_dir(tmp_path: Path) -> None:
    settings = make_settings(data_dir=tmp_path)
    first = signing.load_keyring(settings)
    path = tmp_path / signing.BUNDLE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.load_keyring(settings).active == first.active
    with pytest.raises(ConfigurationError):
        signing.load_keyring(make_settings(data_dir=tmp_path / "new"), create=False)


def test_distributed_mode_reads_the_bundle_or_derives_from_the_auth_secret(
    tmp_path: Path,
) -> None:
    kafka = make_settings(data_dir=tmp_path, bus="kafka://127.0.0.1:9")
    derived = signing.load_keyring(kafka)
    assert signing.load_keyring(kafka).active == derived.active  # every process agrees
    assert not (tmp_path / signing.BUNDLE_NAME).exists()
    bundle = tmp_path / "keys.pem"
    bundle.write_bytes(signing.private_pem(Ed25519PrivateKey.generate()))
    configured = signing.load_keyring(make_settings(bus="kafka://x:1", signing_keys=bundle))
    assert configured.active != derived.active
    with pytest.raises(ConfigurationError, match="cannot read"):
        signing.load_keyring(make_settings(signing_keys=tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match="no Ed25519 key"):
        signing.parse_bundle(b"not a key")
