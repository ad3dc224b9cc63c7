"""HTTP edge of the webhooks: register one, list them, read one's delivery log, delete it.

An admin may follow every contract; a customer or provider only contracts its token lists,
and sees only webhooks whose contracts it may all see (any other is 404, as if it did not
exist).
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from services.statements import webhooks
from services.statements import webhooks_store as store
from shared.auth import Principal
from shared.events import ContractId, utcnow
from shared.runtime import RuntimeDep
from shared.web import Problem, require

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Subscriber = Annotated[Principal, Depends(require("admin", "customer", "provider"))]
WebhookId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="the webhook_id")]


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl = Field(description="where deliveries are POSTed (http or https)")
    types: list[str] = Field(
        min_length=1, max_length=len(webhooks.TYPES), description="event types to receive"
    )
    contracts: list[ContractId] = Field(
        default_factory=list,
        max_length=1000,
        description="contracts to follow; empty: every contract the caller may see",
    )

    @field_validator("types")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - webhooks.TYPES)
        if unknown:
            allowed = ", ".join(sorted(webhooks.TYPES))
            raise ValueError(f"not a webhook event type: {', '.join(unknown)} (one of {allowed})")
        return value


class WebhookCreated(BaseModel):
    webhook_id: str
    secret: str = Field(description="`whsec_` + base64: shown only now")
    url: str
    types: list[str]
    contracts: list[str] | None = Field(description="null: every contract")


class Attempt(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class Delivery(BaseModel):
    delivery_id: int
    event_id: str
    type: str
    contract_id: str
    status: str = Field(description="pending, delivered, failed (retries ran out), cancelled")
    attempts: int
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    done_at: datetime | None
    log: list[Attempt]


class Endpoint(BaseModel):
    webhook_id: str
    url: str
    types: list[str]
    contracts: list[str] | None = Field(description="null: every contract")
    created_at: datetime
    disabled: str | None = Field(description="why the endpoint stopped receiving, if it did")


class Endpoints(BaseModel):
    webhooks: list[Endpoint]


class DeliveryLog(Endpoint):
    deliveries: list[Delivery]


@router.post("", status_code=201, response_model=WebhookCreated)
async def register(
    request: WebhookRequest, response: Response, runtime: RuntimeDep, principal: Subscriber
) -> WebhookCreated:
    """Deliveries start with the events the service reads after this; the secret is in this
    answer only (`no-store`; an Idempotency-Key keeps it sealed)."""
    response.headers["Cache-Control"] = "no-store"
    contracts = _contracts(principal, request.contracts)
    url = str(request.url)
    if not runtime.settings.webhooks_may_reach_private:
        try:
            await webhooks.refuse_private(url)
        except webhooks.RefusedUrl as exc:
            raise Problem(422, "URL refused", str(exc), errors=[{"loc": ["url"]}]) from exc
    hook = store.Webhook(
        webhook_id=str(uuid.uuid4()),
        url=url,
        types=frozenset(request.types),
        contracts=contracts,
        owner=f"{principal.role}:{principal.subject}",
        salt=secrets.token_hex(16),
        created_at=utcnow(),
    )
    await store.add(runtime.engine, hook)
    secret = webhooks.endpoint_secret(runtime.secret, hook.webhook_id, hook.salt)
    return WebhookCreated(
        webhook_id=hook.webhook_id,
        secret=webhooks.serialised(secret),
        url=url,
        types=sorted(hook.types),
        contracts=None if contracts is None else sorted(contracts),
    )


@router.get("", response_model=Endpoints)
async def listing(runtime: RuntimeDep, principal: Subscriber) -> Endpoints:
    """The webhooks the caller may see (an admin: all), oldest first; never their secrets."""
    hooks = [h for h in await store.every(runtime.engine) if _may_see(principal, h)]
    return Endpoints(webhooks=[_endpoint(h) for h in hooks])


@router.get("/{webhook_id}/deliveries", response_model=DeliveryLog)
async def deliveries(
    webhook_id: WebhookId,
    runtime: RuntimeDep,
    principal: Subscriber,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The newest deliveries first, each with every attempt's status code and time."""
    hook = await _visible(runtime, principal, webhook_id)
    return {
        **_endpoint(hook).model_dump(),
        "deliveries": await store.log(runtime.engine, webhook_id, limit),
    }


@router.delete("/{webhook_id}", status_code=204, response_class=Response)
async def remove(webhook_id: WebhookId, runtime: RuntimeDep, principal: Subscriber) -> Response:
    """Nothing more is sent; its queue and log go with it."""
    await _visible(runtime, principal, webhook_id)
    await store.remove(runtime.engine, webhook_id)
    return Response(status_code=204)


def _contracts(principal: Principal, asked: list[str]) -> frozenset[str] | None:
    """What the webhook follows: an admin's empty list is every contract; a party's is the
    contracts its token lists, and it may name no other."""
    if principal.role == "admin":
        return frozenset(asked) or None
    for contract_id in asked:
        if not principal.may_see(contract_id):
            raise Problem(404, "Not found", f"no contract {contract_id!r}")
    chosen = frozenset(asked) or principal.contracts
    if not chosen:
        raise Problem(422, "No contracts", "the token lists no contract to follow")
    return chosen


def _may_see(principal: Principal, hook: store.Webhook) -> bool:
    return principal.role == "admin" or (
        hook.contracts is not None and all(principal.may_see(c) for c in hook.contracts)
    )


def _endpoint(hook: store.Webhook) -> Endpoint:
    return Endpoint(
        webhook_id=hook.webhook_id,
        url=hook.url,
        types=sorted(hook.types),
        contracts=None if hook.contracts is None else sorted(hook.contracts),
        created_at=hook.created_at,
        disabled=hook.disabled,
    )


async def _visible(runtime: RuntimeDep, principal: Principal, webhook_id: str) -> store.Webhook:
    hook = await store.get(runtime.engine, webhook_id)
    if hook is None or not _may_see(principal, hook):
        raise Problem(404, "Not found", f"no webhook {webhook_id!r}")
    return hook
