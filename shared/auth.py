"""JWT tokens: who is calling (`role`) and which contracts they may reach (`contracts`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

import jwt

Role = Literal["admin", "agent", "customer", "provider", "auditor"]
ROLES: tuple[str, ...] = get_args(Role)
READER_ROLES = frozenset({"admin", "customer", "provider", "auditor"})
ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not signed by us."""


@dataclass(frozen=True)
class Principal:
    role: str
    contracts: frozenset[str]
    subject: str
    token_id: str

    def may_see(self, contract_id: str) -> bool:
        return self.role == "admin" or contract_id in self.contracts


def issue_token(
    secret: str,
    role: str,
    contracts: list[str] | tuple[str, ...] = (),
    ttl_days: float = 30,
    subject: str | None = None,
    now: datetime | None = None,
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    issued = now or datetime.now(UTC)
    claims = {
        "sub": subject or f"{role}-{uuid.uuid4().hex[:8]}",
        "role": role,
        "contracts": sorted(set(contracts)),
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(days=ttl_days)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "jti"]}
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    role, contracts = claims.get("role"), claims.get("contracts", [])
    if role not in ROLES or not isinstance(contracts, list):
        raise InvalidToken("token claims are not a slapay role and contract list")
    return Principal(
        role=role,
        contracts=frozenset(str(c) for c in contracts),
        subject=str(claims.get("sub", "")),
        token_id=str(claims["jti"]),
    )
