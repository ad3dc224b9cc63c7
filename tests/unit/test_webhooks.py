"""Webhook signatures (checked by the Standard Webhooks reference library), the retry
schedule, and which addresses a webhook may not reach."""

from __future__ import annotations

import base64
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.statements import webhooks

T0 = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)


def test_a_signed_delivery_verifies_with_the_reference_library() -> None:
    secret = webhooks.endpoint_secret("server-secret-" + "s" * 40, "hook-1", "salt")
    body = b'{"specversion":"1.0","id":"e-1"}'
    now = int(datetime.now(UTC).timestamp())
    headers = webhooks.signed_headers(secret, "e-1", now, body)
    receiver = Webhook(webhooks.serialised(secret))
    assert receiver.verify(body, headers) == {"specversion": "1.0", "id": "e-1"}
    with pytest.raises(WebhookVerificationError):
        receiver.verify(body.replace(b"e-1", b"e-2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.serialised(b"x" * 32)).verify(body, headers)


def test_the_secret_is_whsec_base64_of_32_bytes_and_depends_on_the_server_secret() -> None:
    one = webhooks.endpoint_secret("a" * 40, "hook-1", "salt")
    shown = webhooks.serialised(one)
    assert shown.startswith("whsec_")
    assert base64.b64decode(shown.removeprefix("whsec_")) == one
    assert len(one) == 32
    assert one != webhooks.endpoint_secret("b" * 40, "hook-1", "salt")
    assert one != webhooks.endpoint_secret("a" * 40, "hook-1", "pepper")
    assert one != webhooks.endpoint_secret("a" * 40, "hook-2", "salt")


def test_retries_back_off_exponentially_for_three_days_then_stop() -> None:
    schedule = webhooks.Schedule(base_s=5, max_s=12 * 3600, window_s=3 * 86400)
    delays, now, attempts = [], T0, 1
    while (later := schedule.next_attempt(attempts, T0, now)) is not None:
        delays.append((later - now).total_seconds())
        now, attempts = later, attempts + 1
    assert delays[:4] == [5, 10, 20, 40]
    assert max(delays) == 12 * 3600
    assert now == T0 + timedelta(days=3)  # the last attempt is at the end of the window
    assert all(b >= a for a, b in itertools.pairwise(delays[:-1]))  # the last may be cut


def test_retry_after_asks_for_a_longer_pause_but_not_beyond_the_cap() -> None:
    schedule = webhooks.Schedule(base_s=5, max_s=60, window_s=3600)
    assert schedule.next_attempt(1, T0, T0, retry_after_s=30) == T0 + timedelta(seconds=30)
    assert schedule.next_attempt(1, T0, T0, retry_after_s=1e6) == T0 + timedelta(seconds=60)
    assert webhooks.retry_after_s("120", T0) == 120
    assert webhooks.retry_after_s("Mon, 05 Oct 2026 12:01:00 GMT", T0) == 60
    assert webhooks.retry_after_s("soon", T0) is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.5.5",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fc00::1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "224.0.0.1",
    ],
)
def test_private_addresses_are_private(address: str) -> None:
    assert webhooks.is_private(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "8.8.8.8"])
def test_public_addresses_are_not(address: str) -> None:
    assert not webhooks.is_private(address)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://[::1]/x",
        "http://10.0.0.7/",
        "http://169.254.169.254/latest/meta-data",
        "ftp://93.184.215.14/",
    ],
)
async def test_refused_urls(url: str) -> None:
    with pytest.raises(webhooks.RefusedUrl):
        await webhooks.refuse_private(url)


async def test_a_public_address_is_allowed() -> None:
    await webhooks.refuse_private("https://93.184.215.14:8443/hook")
