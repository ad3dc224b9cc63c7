"""The webhooks' two loops: queue deliveries from the bus, and send what is due.

Queueing runs in its own consumer group, so a slow or failing endpoint never holds the
statements fold: it only writes rows to the queue, and its offsets move once they are
durable. Sending reads the queue: at least once, in bus order per endpoint and contract,
retried with back-off (`webhooks.Schedule`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx

from services.statements import webhooks
from services.statements import webhooks_store as store
from services.statements.webhooks_store import Due, Outcome
from shared import cloudevents
from shared.consuming import Delivered, envelopes, run_consumer
from shared.events import utcnow
from shared.retrying import every
from shared.runtime import Runtime
from shared.settings import Settings

log = logging.getLogger(__name__)
GROUP = "statements-webhooks"
BATCH_SENDS = 32
"""Lanes sent at once per round (each a different endpoint or contract)."""
LEASE_GRACE_S = 30.0
"""How long past its timeout a claimed attempt keeps its lease (a crashed sender's claim
frees itself after it)."""
ERROR_CHARS = 500


async def queue_loop(runtime: Runtime) -> None:
    consumer = runtime.bus.consumer(list(webhooks.TOPICS), GROUP)
    await run_consumer(
        runtime.bus,
        consumer,
        functools.partial(queue, runtime),
        isolation=runtime.isolation(GROUP),
        observer=runtime.telemetry.metrics.consumer(GROUP),
    )


async def queue(runtime: Runtime, delivered: Sequence[Delivered]) -> None:
    """A delivery per event and webhook that asks for it, in bus order."""
    events = envelopes(delivered)
    now = utcnow()
    async with runtime.engine.begin() as conn:
        hooks = await store.active(conn)
        rows = [
            {
                "webhook_id": hook.webhook_id,
                "contract_id": event.contract_id,
                "event_id": str(event.event_id),
                "type": event.type,
                "body": cloudevents.structured_json(event).decode(),
                "created_at": now,
            }
            for event in events
            for hook in hooks
            if hook.wants(event.type, event.contract_id)
        ]
        if rows:
            await store.enqueue(conn, rows)


async def send_loop(runtime: Runtime) -> None:
    settings = runtime.settings
    timeout = httpx.Timeout(settings.webhook_timeout_s)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        await every(
            settings.webhook_poll_interval_s,
            functools.partial(send_due, runtime, client),
            what="sending webhooks",
        )


async def send_due(runtime: Runtime, client: httpx.AsyncClient) -> int:
    """Send every due delivery, round after round while some are sent; returns how many
    attempts were made."""
    made = 0
    while True:
        now = utcnow()
        lease = now + timedelta(seconds=runtime.settings.webhook_timeout_s + LEASE_GRACE_S)
        heads = await store.due(runtime.engine, now, BATCH_SENDS)
        claimed = [h for h in heads if await store.claim(runtime.engine, h.id, now, lease)]
        if not claimed:
            return made
        await asyncio.gather(*(attempt(runtime, client, due) for due in claimed))
        made += len(claimed)


async def attempt(runtime: Runtime, client: httpx.AsyncClient, due: Due) -> Outcome:
    """One signed POST of a delivery, and its outcome recorded. Stopped half-way (a
    shutdown), it gives its lease back: the delivery is sent again at once after a restart."""
    settings = runtime.settings
    started, at = time.monotonic(), utcnow()
    try:
        status_code, retry_after, error = await _post(runtime, client, due, at)
    except asyncio.CancelledError:
        await asyncio.shield(store.release(runtime.engine, due.id))
        raise
    elapsed_ms = int((time.monotonic() - started) * 1000)
    outcome = _outcome(settings, due, at, status_code, error, retry_after, elapsed_ms)
    await store.record(runtime.engine, outcome)
    if status_code == 410:
        await store.disable(runtime.engine, due.webhook_id, f"410 Gone at {at.isoformat()}")
    if outcome.status != "delivered":
        log.warning("webhook %s: delivery %s %s", due.webhook_id, due.id, outcome.error)
    return outcome


async def _post(
    runtime: Runtime, client: httpx.AsyncClient, due: Due, at: datetime
) -> tuple[int | None, str | None, str | None]:
    """(status code, `Retry-After`, error) of one POST; the answer's body is never read."""
    secret = webhooks.endpoint_secret(runtime.secret, due.webhook_id, due.salt)
    headers = webhooks.signed_headers(secret, due.event_id, int(at.timestamp()), due.body)
    try:
        if not runtime.settings.webhooks_may_reach_private:
            await webhooks.refuse_private(due.url)
        async with client.stream("POST", due.url, content=due.body, headers=headers) as response:
            return response.status_code, response.headers.get("retry-after"), None
    except webhooks.RefusedUrl as exc:
        return None, None, str(exc)
    except httpx.HTTPError as exc:
        return None, None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]


def _outcome(
    settings: Settings,
    due: Due,
    at: datetime,
    status_code: int | None,
    error: str | None,
    retry_after: str | None,
    elapsed_ms: int,
) -> Outcome:
    attempt_no = due.attempts + 1
    if status_code is not None and 200 <= status_code < 300:
        return Outcome(due.id, attempt_no, at, status_code, None, elapsed_ms, "delivered", None)
    if status_code is not None:
        error = f"HTTP {status_code}"
    if status_code == 410:
        return Outcome(due.id, attempt_no, at, status_code, error, elapsed_ms, "cancelled", None)
    schedule = webhooks.Schedule(
        settings.webhook_retry_base_s, settings.webhook_retry_max_s, settings.webhook_retry_window_s
    )
    later = schedule.next_attempt(
        attempt_no,
        due.created_at,
        at,
        webhooks.retry_after_s(retry_after, at),
        jitter=random.uniform(0, 0.1),
    )
    status = "pending" if later is not None else "failed"
    return Outcome(due.id, attempt_no, at, status_code, error, elapsed_ms, status, later)
