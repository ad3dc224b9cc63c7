"""Standard Webhooks for subscribers without Kafka: secrets, signatures, the retry schedule,
and which URLs a webhook may name (docs/subscribers.md).

A delivery's body is the event as a structured-mode CloudEvent; it is signed per the
Standard Webhooks specification: `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">` under the endpoint's `whsec_` secret, with `webhook-id` = the event id
(the same on every attempt, so a receiver dedupes by it) and `webhook-timestamp` = the time of
the attempt.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from shared.cloudevents import STRUCTURED_CONTENT_TYPE
from shared.events import EVENT_TYPES, TOPIC_CONTRACTS, TOPIC_JOURNAL

SECRET_PREFIX = "whsec_"
TOPICS = (TOPIC_JOURNAL, TOPIC_CONTRACTS)
"""What webhooks follow: the payment journal and the contracts' life (measurements and
reviews are for Kafka subscribers: their volume, and reviewers' privacy)."""
TYPES = frozenset(t for t, cls in EVENT_TYPES.items() if cls.TOPIC in TOPICS)
"""The event types a webhook may ask for."""


def endpoint_secret(server_secret: str, webhook_id: str, salt: str) -> bytes:
    """The endpoint's signing secret (32 bytes), derived from the server's secret, so that
    the database alone, which keeps only the salt, does not reveal it."""
    message = f"slapay-webhook-secret\0{webhook_id}\0{salt}".encode()
    return hmac.new(server_secret.encode(), message, hashlib.sha256).digest()


def serialised(secret: bytes) -> str:
    """The secret as a subscriber configures it: `whsec_` and base64."""
    return SECRET_PREFIX + base64.b64encode(secret).decode()


def signature(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": STRUCTURED_CONTENT_TYPE,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }


@dataclass(frozen=True)
class Schedule:
    """Exponential back-off: `base_s`, doubling up to `max_s` between attempts, for at most
    `window_s` after the first attempt; a receiver's `Retry-After` may ask for a longer pause.
    A little jitter spreads out retries that failed together."""

    base_s: float
    max_s: float
    window_s: float

    def next_attempt(
        self,
        attempts: int,
        first_at: datetime,
        now: datetime,
        retry_after_s: float | None = None,
        jitter: float = 0.0,
    ) -> datetime | None:
        """When to try again after `attempts` failed ones, or None: the window is over."""
        deadline = first_at + timedelta(seconds=self.window_s)
        if now >= deadline:
            return None
        delay = min(self.base_s * 2 ** max(attempts - 1, 0), self.max_s)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_s))
        return min(now + timedelta(seconds=delay * (1 + jitter)), deadline)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """A `Retry-After` header (seconds, or an HTTP date) as seconds from `now`."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max((parsedate_to_datetime(value) - now).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


class RefusedUrl(ValueError):
    """A URL a webhook may not name (422 at registration; a failed attempt later)."""


def host_and_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedUrl("the URL must be http or https, with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise RefusedUrl(f"invalid port: {exc}") from None
    return parts.hostname, port


def is_private(address: str) -> bool:
    """Whether an address is not on the public internet: private, loopback, link-local
    (cloud metadata), reserved, multicast, unspecified; IPv4 mapped into IPv6 as itself."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def refuse_private(url: str) -> None:
    """Raise `RefusedUrl` if the URL's host is, or resolves to, a non-public address."""
    host, port = host_and_port(url)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RefusedUrl(f"the host {host!r} does not resolve: {exc}") from None
    private = sorted({str(info[4][0]) for info in found if is_private(str(info[4][0]))})
    if private:
        raise RefusedUrl(
            f"the host {host!r} is a private or loopback address ({', '.join(private)}); "
            "set SLAPAY_WEBHOOK_ALLOW_PRIVATE=1 to allow it"
        )
