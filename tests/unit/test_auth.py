from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from shared.auth import InvalidToken, issue_token, verify_token
from shared.settings import ConfigurationError, Settings

SECRET = "s" * 40


def test_a_token_carries_role_contracts_and_its_ids() -> None:
    principal = verify_token(SECRET, issue_token(SECRET, "customer", ["acme-2026", "acme-2026"]))
    assert principal.role == "customer"
    assert principal.contracts == frozenset({"acme-2026"})
    assert principal.may_see("acme-2026") and not principal.may_see("other")
    assert len(principal.token_id) == 32


def test_admin_sees_every_contract() -> None:
    assert verify_token(SECRET, issue_token(SECRET, "admin")).may_see("anything")


@pytest.mark.parametrize(
    "token",
    [
        issue_token(SECRET, "admin", now=datetime.now(UTC) - timedelta(days=40), ttl_days=30),
        issue_token("another-secret-" + "x" * 30, "admin"),
        jwt.encode({"role": "root", "contracts": [], "exp": 2**31, "iat": 0, "jti": "x"}, SECRET),
        jwt.encode({"role": "admin", "contracts": []}, SECRET),
        "not-a-token",
    ],
    ids=["expired", "forged", "unknown-role", "no-exp-iat-jti", "garbage"],
)
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        verify_token(SECRET, token)


def test_unknown_roles_cannot_be_issued() -> None:
    with pytest.raises(ValueError):
        issue_token(SECRET, "root")


def test_embedded_mode_keeps_a_generated_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, auth_secret=None)
    first = settings.secret()
    assert len(first) >= 32 and settings.secret() == first
    assert (tmp_path / "auth_secret").stat().st_mode & 0o077 == 0


def test_distributed_mode_needs_a_long_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="required"):
        Settings(bus="kafka://localhost:9092", data_dir=tmp_path, auth_secret=None).secret()
    with pytest.raises(ConfigurationError, match="32 bytes"):
        Settings(bus="kafka://localhost:9092", auth_secret="short").secret()
