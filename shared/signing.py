"""Signed final statements (Ed25519) and the public keys that verify them.

Pinned so that a party can verify a statement offline, with their own tools:
- message: the RFC 8785 (JCS) canonical JSON of the statement without the members
  `signature` and `disputes` (the latter is the read side's live list of disputes, which
  changes after the statement was signed);
- `signature` = `{"alg": "EdDSA", "kid": KEY_ID, "value": base64url(Ed25519(message))}`;
- key id = the RFC 7638 JWK thumbprint of the public key,
  `base64url(sha256(JCS({"crv": "Ed25519", "kty": "OKP", "x": base64url(raw key)})))`;
- base64url is RFC 4648 §5 without padding; the public keys are a JWK set (RFC 7517) at
  `GET /.well-known/slapay-keys.json`, the active key first, retired keys after it.

Key material is a PEM bundle: the first `PRIVATE KEY` block signs; every key in it, private
or `PUBLIC KEY`, is published. To rotate, put a new private key first and keep the old ones
(as public keys: see `rotate_bundle`), so statements signed before stay verifiable.
Where the bundle comes from: `SLAPAY_SIGNING_KEYS` (a file path); else, in embedded mode,
`<data dir>/signing_keys.pem`, created on first use; else (distributed mode without a
bundle) a key derived from `SLAPAY_AUTH_SECRET`, so the ledger and statements agree.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.settings import ConfigurationError, Settings

ALG = "EdDSA"
UNSIGNED = ("signature", "disputes")
KEYS_PATH = "/.well-known/slapay-keys.json"
BUNDLE_NAME = "signing_keys.pem"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----\s*", re.DOTALL)
log = logging.getLogger(__name__)


class SignatureInvalid(Exception):
    """The statement is unsigned, signed by an unknown key, or altered since it was signed."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The RFC 7638 thumbprint of the key's JWK: the same key always has the same id."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": b64url(_raw(key))}
    return b64url(hashlib.sha256(rfc8785.dumps(members)).digest())


def message(statement: Mapping[str, Any]) -> bytes:
    """The bytes a statement's signature covers."""
    return rfc8785.dumps({k: v for k, v in statement.items() if k not in UNSIGNED})


def verify(statement: Mapping[str, Any], keys: Mapping[str, Ed25519PublicKey]) -> str:
    """The id of the key that signed `statement`; `SignatureInvalid` says why not."""
    signature = statement.get("signature")
    if not isinstance(signature, Mapping):
        raise SignatureInvalid("the statement carries no signature")
    if signature.get("alg") != ALG:
        raise SignatureInvalid(f"unsupported signature algorithm {signature.get('alg')!r}")
    kid = str(signature.get("kid"))
    if kid not in keys:
        raise SignatureInvalid(f"signed by key {kid!r}, which is not among the known keys")
    try:
        keys[kid].verify(unb64url(str(signature.get("value", ""))), message(statement))
    except (InvalidSignature, ValueError) as exc:
        raise SignatureInvalid("the signature does not match the statement's content") from exc
    return kid


@dataclass(frozen=True)
class Keyring:
    """The signing key (None where this process only verifies), every published key, and
    the id of the one that signs new statements."""

    signer: Ed25519PrivateKey | None
    keys: dict[str, Ed25519PublicKey]
    active: str | None = None

    @classmethod
    def of(cls, signer: Ed25519PrivateKey) -> Keyring:
        """A keyring of one key, which signs."""
        kid = key_id(signer.public_key())
        return cls(signer, {kid: signer.public_key()}, kid)

    def public(self) -> Keyring:
        """The same keys without the private one: for a service that only publishes."""
        return Keyring(None, self.keys, self.active)

    def sign(self, statement: Mapping[str, Any]) -> dict[str, Any]:
        """The statement with its `signature` member set."""
        if self.signer is None:
            raise ConfigurationError("no private key to sign statements with")
        value = b64url(self.signer.sign(message(statement)))
        kid = key_id(self.signer.public_key())
        return {**statement, "signature": {"alg": ALG, "kid": kid, "value": value}}

    def verify(self, statement: Mapping[str, Any]) -> str:
        return verify(statement, self.keys)

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK set; `status` says which one signs new statements."""
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": b64url(_raw(key)),
                    "kid": kid,
                    "use": "sig",
                    "alg": ALG,
                    "status": "active" if kid == self.active else "retired",
                }
                for kid, key in self.keys.items()
            ]
        }


def keys_from_jwks(document: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWK set (other key types are ignored), by key id."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set (an object with a list of keys)")
    found: dict[str, Ed25519PublicKey] = {}
    for jwk in document["keys"]:
        okp = isinstance(jwk, Mapping) and (jwk.get("kty"), jwk.get("crv")) == ("OKP", "Ed25519")
        if okp and "x" in jwk:
            key = Ed25519PublicKey.from_public_bytes(unb64url(str(jwk["x"])))
            found[str(jwk.get("kid") or key_id(key))] = key
    return found


def parse_bundle(pem: bytes) -> Keyring:
    """A keyring from a PEM bundle: the first private key signs, every key is published."""
    signer: Ed25519PrivateKey | None = None
    keys: dict[str, Ed25519PublicKey] = {}
    for block in _PEM_BLOCK.finditer(pem):
        kind, text = block.group(1), block.group(0)
        if kind not in (b"PRIVATE KEY", b"PUBLIC KEY"):
            continue
        private = kind == b"PRIVATE KEY"
        key = (
            serialization.load_pem_private_key(text, password=None)
            if private
            else serialization.load_pem_public_key(text)
        )
        if not isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
            raise ConfigurationError("signing keys must be Ed25519")
        if isinstance(key, Ed25519PrivateKey):
            signer = signer or key
        public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
        keys.setdefault(key_id(public), public)
    if not keys:
        raise ConfigurationError("the signing key bundle holds no Ed25519 key")
    if signer is None:
        return Keyring(None, keys)
    active = key_id(signer.public_key())
    return Keyring(signer, {active: keys[active], **keys}, active)


def private_pem(key: Ed25519PrivateKey) -> bytes:
    pkcs8, none = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, none)


def public_pem(key: Ed25519PublicKey) -> bytes:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_bytes(serialization.Encoding.PEM, spki)


def rotate_bundle(pem: bytes) -> bytes:
    """A bundle with a new signing key first and every old key kept as a public key only."""
    old = parse_bundle(pem)
    return private_pem(Ed25519PrivateKey.generate()) + b"".join(
        public_pem(key) for key in old.keys.values()
    )


def load_keyring(settings: Settings, create: bool = True) -> Keyring:
    """The keyring the settings name (module docstring); `create` makes the embedded
    bundle if it is missing."""
    if settings.signing_keys is not None:
        try:
            return parse_bundle(settings.signing_keys.read_bytes())
        except OSError as exc:
            raise ConfigurationError(f"SLAPAY_SIGNING_KEYS: cannot read {exc.filename}") from exc
    if settings.embedded:
        path = settings.data_dir / BUNDLE_NAME
        if not path.exists():
            if not create:
                raise ConfigurationError(f"no signing keys at {path}")
            _create_once(path, private_pem(Ed25519PrivateKey.generate()))
        return parse_bundle(path.read_bytes())
    # Every process that holds the auth secret derives the same key (HKDF-SHA256).
    log.warning("SLAPAY_SIGNING_KEYS is not set: signing with a key derived from the auth secret")
    hkdf = HKDF(hashes.SHA256(), 32, salt=None, info=b"slapay statement signing v1")
    return Keyring.of(Ed25519PrivateKey.from_private_bytes(hkdf.derive(settings.secret().encode())))


def _create_once(path: Path, content: bytes) -> None:
    """Write `content` to `path` atomically, mode 0600, unless another process won the race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    try:
        os.link(staged, path)
    except FileExistsError:
        pass
    finally:
        staged.unlink()
