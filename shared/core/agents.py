"""Agent keys in the terms, and the parties measurements come from (docs/architecture.md,
"Signed measurements").

A signing agent is listed by its key: whoever holds the private key speaks for the party the
terms name beside it. A measurement's party is that key's party; an unsigned one has none.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Party = Literal["provider", "customer", "third_party"]
PARTIES: tuple[Party, ...] = ("provider", "customer", "third_party")
UNSIGNED = "unsigned"
"""How a derivation names the measurements that came without a signature (no party)."""
MAX_AGENTS = 100
KEY_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
ED25519_PUBLIC_KEY_BYTES = 32


def public_key_bytes(text: str) -> bytes:
    """The raw Ed25519 public key a base64 text spells; `ValueError` unless it is 32 bytes."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be the base64 of a raw Ed25519 public key") from None
    if len(raw) != ED25519_PUBLIC_KEY_BYTES:
        raise ValueError(
            f"an Ed25519 public key is {ED25519_PUBLIC_KEY_BYTES} bytes; this one is {len(raw)}"
        )
    return raw


def _check_public_key(text: str) -> str:
    public_key_bytes(text)
    return text


class AgentKey(BaseModel):
    """A key an agent signs its requests with, and the party that agent measures for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: Annotated[str, Field(pattern=KEY_ID_PATTERN)]
    party: Party
    public_key: Annotated[str, Field(max_length=100), AfterValidator(_check_public_key)]


def check_agents(agents: tuple[AgentKey, ...]) -> tuple[AgentKey, ...]:
    """Key ids are unique, and so are keys: one key speaks for one agent of one party."""
    ids = [agent.key_id for agent in agents]
    repeated = sorted({key_id for key_id in ids if ids.count(key_id) > 1})
    if repeated:
        raise ValueError(f"agent key_ids must be unique; repeated: {', '.join(repeated)}")
    keys = [public_key_bytes(agent.public_key) for agent in agents]
    if len(set(keys)) < len(keys):
        raise ValueError("a public key is listed twice; each agent has a key of its own")
    return agents


def check_sources(sources: tuple[Party, ...]) -> tuple[Party, ...]:
    if len(set(sources)) < len(sources):
        raise ValueError("sources must not repeat a party")
    return sources


Agents = Annotated[
    tuple[AgentKey, ...],
    Field(max_length=MAX_AGENTS),
    AfterValidator(check_agents),
]
Sources = Annotated[
    tuple[Party, ...],
    Field(min_length=1, max_length=len(PARTIES)),
    AfterValidator(check_sources),
]


def counts(sources: tuple[str, ...] | None, party: str | None) -> bool:
    """Whether a measurement from `party` (None: unsigned) counts for a KPI naming `sources`:
    every one does when it names none; else only those whose signing key's party it names."""
    return sources is None or party in sources
