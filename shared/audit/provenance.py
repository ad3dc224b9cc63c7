"""Every measurement of a period against the request it came in (docs/architecture.md,
"Signed measurements"), from the bus alone.

A measurement that names a signed batch must find it on the bus: its signature verifies
with a key the terms agreed before the batch arrived list, under the party the measurement
claims, and the batch's item at its index is this measurement (contract, KPI, value,
instant and event id). One that names none is a difference only where those terms require
signatures.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

import msgspec
from pydantic import TypeAdapter, ValidationError

from shared.audit.finals import Difference
from shared.audit.origins import Batch, Origin
from shared.audit.reading import History
from shared.core.periods import period_bounds
from shared.core.statement import Observation
from shared.core.terms import Terms, terms_in_force
from shared.events import AwareDatetime, deterministic_event_id
from shared.signed_requests import BadSignature, SignedRequest, body_digest, verify

_BODY = msgspec.json.Decoder(float_hook=Decimal)
_INSTANT: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def provenance_differences(h: History, period: str) -> list[Difference]:
    """A difference for each of the period's measurements on the bus whose origin does not
    check out (in any KPI the terms in force name)."""
    terms = terms_in_force(h.terms, period)
    if terms is None:
        return []
    start, end = period_bounds(period, terms.timezone)
    checked = _Checked(h)
    differences = []
    for _, _, observation in h.measurements:
        if terms.kpi(observation.kpi) is None or not start <= observation.occurred_at < end:
            continue
        origin = h.origins.measurements.get(observation.event_id)
        problem = None if origin is None else checked.problem(observation, origin)
        if problem is not None:
            differences.append(
                {
                    "check": "signed_measurement",
                    "event_id": observation.event_id,
                    "kpi": observation.kpi,
                    "batch": origin.batch if origin else None,
                    "problem": problem,
                }
            )
    return differences


class _Checked:
    """Each batch is checked once, however many measurements name it."""

    def __init__(self, h: History) -> None:
        self.h = h
        self.terms_at = _TermsAt(h.terms, h.agreed)
        self.batch_problem = cache(self._batch_problem)
        self.items = cache(_items)

    def problem(self, observation: Observation, origin: Origin) -> str | None:
        terms = self.terms_at(origin.recorded_at)
        if origin.batch is None:
            if terms is not None and terms.require_signed:
                return "an unsigned measurement, where the terms then in force require signatures"
            return None
        batches = self.h.origins.batches.get(origin.batch, [])
        if not batches:
            return "names a signed batch that is not on the bus"
        problems = [self.batch_problem(b, origin.party) for b in batches]
        if all(problems):
            return str(problems[0])
        found = next(b for b, p in zip(batches, problems, strict=True) if p is None)
        return self._item_problem(found, observation, origin.batch_index)

    def _batch_problem(self, batch: Batch, party: str | None) -> str | None:
        signed = batch.signed
        body = signed.body.encode()
        if body_digest(body) != signed.digest:
            return "the batch's body does not have the digest it is published under"
        terms = self.terms_at(batch.recorded_at)
        keys = {a.key_id: a for a in terms.agents} if terms is not None else {}
        request = SignedRequest(
            signed.method,
            signed.path,
            signed.content_type,
            signed.content_digest,
            signed.signature_input,
            signed.signature,
            body,
        )
        try:
            key = verify(request, keys, None)
        except BadSignature as exc:
            return f"the batch's signature does not check out with the keys then listed: {exc}"
        if key.key_id != signed.key_id or key.party != signed.party or party != key.party:
            return f"the batch was signed by {key.key_id} ({key.party}), not as it claims"
        return None

    def _item_problem(
        self, batch: Batch, observation: Observation, index: int | None
    ) -> str | None:
        items = self.items(batch.signed.body)
        if index is None or not 0 <= index < len(items):
            return "names a place the signed batch does not have"
        item = items[index]
        if not isinstance(item, dict):
            return "the signed batch holds no measurement at that place"
        mid = item.get("measurement_id")
        producer = mid if isinstance(mid, str) else f"batch:{batch.signed.digest}:{index}"
        contract_id = item.get("contract_id")
        expected = str(deterministic_event_id(self.h.contract_id, producer))
        try:
            instant = _INSTANT.validate_python(item.get("observed_at"))
        except ValidationError:
            instant = None
        value = item.get("value")
        if not (
            contract_id == self.h.contract_id
            and item.get("kpi") == observation.kpi
            and isinstance(value, int | Decimal)
            and not isinstance(value, bool)
            and Decimal(value) == observation.value
            and instant == observation.occurred_at
            and expected == observation.event_id
        ):
            return "differs from what the signed batch says at its place"
        return None


class _TermsAt:
    """The latest terms version agreed at or before an instant (the first, before any)."""

    def __init__(self, versions: Sequence[Terms], agreed: Sequence[datetime]) -> None:
        self.versions, self.agreed = list(versions), list(agreed)

    def __call__(self, at: datetime) -> Terms | None:
        if not self.versions:
            return None
        found = bisect.bisect_right(self.agreed, at)
        return self.versions[max(found, 1) - 1]


def _items(body: str) -> list[Any]:
    try:
        document = _BODY.decode(body)
    except msgspec.DecodeError:
        return []
    items = document.get("measurements") if isinstance(document, dict) else None
    return items if isinstance(items, list) else []
