"""A KPI's `sources`: only measurements from the named parties' agents count; the others are
kept aside and the derivation says so. Terms list agent keys, validated and bounded."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.demo import demo_terms
from shared.core.payment import Observation, PeriodStates, compute_statement, statement_from_states
from shared.core.terms import Terms

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()
PERIOD = "2026-09"


def terms(sources: list[str] | None = None, **changes: Any) -> Terms:
    document = copy.deepcopy(demo_terms(PERIOD))
    if sources is not None:
        document["kpis"][0]["sources"] = sources
    return Terms.model_validate({**document, **changes})


def probe(n: int, value: int, party: str | None) -> Observation:
    return Observation(
        f"{party}-{n}",
        "availability",
        Decimal(value),
        datetime(2026, 9, 1 + n % 28, n // 28 % 24, tzinfo=UTC),
        party,
    )


OBSERVATIONS = [
    *(probe(i, 1, "customer") for i in range(10)),
    *(probe(i, 0, "provider") for i in range(5)),
    *(probe(i, 0, None) for i in range(2)),
]


def availability(terms_: Terms, observations: list[Observation]) -> Any:
    statement = compute_statement(terms_, PERIOD, observations, [])
    return next(line for line in statement.lines if line.kpi == "availability")


def test_a_customer_only_kpi_ignores_the_provider_probe_and_says_so() -> None:
    line = availability(terms(["customer"]), OBSERVATIONS)
    assert line.amount == 0  # ten customer probes, all up
    derivation = line.model_dump(mode="json")["derivation"]
    assert derivation["events"] == 10 and derivation["value"] == 1
    assert derivation["sources"] == ["customer"]
    assert derivation["not_counted"]["events"] == 7
    assert derivation["not_counted"]["parties"] == {"provider": 5, "unsigned": 2}
    assert "Not counted" in line.description and "5 provider" in line.description


def test_without_sources_every_measurement_counts_and_nothing_is_shown_aside() -> None:
    line = availability(terms(), OBSERVATIONS)
    derivation = line.model_dump(mode="json")["derivation"]
    assert derivation["events"] == 17
    assert "not_counted" not in derivation and "sources" not in derivation
    assert line.amount < 0


def test_the_provider_side_can_be_what_counts() -> None:
    line = availability(terms(["provider", "third_party"]), OBSERVATIONS)
    assert line.derivation.events == 5
    assert line.derivation.not_counted is not None
    assert line.derivation.not_counted.parties == {"customer": 10, "unsigned": 2}


def test_folded_states_and_raw_events_give_the_same_statement() -> None:
    contract = terms(["customer"])
    states = PeriodStates(contract)
    for o in OBSERVATIONS:
        states.add(o.kpi, o.event_id, o.value, o.party)
    running = statement_from_states(contract, PERIOD, states, [])
    assert running == compute_statement(contract, PERIOD, OBSERVATIONS, [])


CUSTOMER = {"key_id": "probe-eu-1", "party": "customer", "public_key": KEY}


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"require_signed": True}, ("require_signed",)),
        ({"agents": [{**CUSTOMER, "party": "auditor"}]}, ("agents", 0, "party")),
        ({"agents": [{**CUSTOMER, "public_key": "bm90IGEga2V5"}]}, ("agents", 0, "public_key")),
        ({"agents": [{**CUSTOMER, "key_id": "a b"}]}, ("agents", 0, "key_id")),
        ({"agents": [CUSTOMER, {**CUSTOMER, "public_key": OTHER_KEY}]}, ("agents",)),
        ({"agents": [CUSTOMER, {**CUSTOMER, "key_id": "probe-eu-2"}]}, ("agents",)),
        ({"agents": [{**CUSTOMER, "key_id": f"k{i}"} for i in range(101)]}, ("agents",)),
        ({"require_signed": "yes", "agents": [CUSTOMER]}, ("require_signed",)),
    ],
    ids=[
        "require-signed-without-keys",
        "unknown-party",
        "not-an-ed25519-key",
        "bad-key-id",
        "key-id-twice",
        "key-twice",
        "too-many",
        "require-signed-not-a-bool",
    ],
)
def test_agent_keys_are_validated(changes: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as error:
        terms(**changes)
    assert tuple(error.value.errors()[0]["loc"]) == loc


@pytest.mark.parametrize("sources", [[], ["customer", "customer"], ["auditor"]])
def test_sources_name_parties_once(sources: list[str]) -> None:
    with pytest.raises(ValidationError) as error:
        terms(sources)
    assert error.value.errors()[0]["loc"][:3] == ("kpis", 0, "sources")


def test_terms_without_the_new_fields_serialise_as_before() -> None:
    document = copy.deepcopy(demo_terms(PERIOD))
    dumped = Terms.model_validate(document).model_dump(mode="json")
    assert {"agents", "require_signed"}.isdisjoint(dumped)
    assert all("sources" not in kpi for kpi in dumped["kpis"])
    signed = terms(["customer"], agents=[CUSTOMER], require_signed=True).model_dump(mode="json")
    assert signed["agents"] == [CUSTOMER] and signed["require_signed"] is True
    assert signed["kpis"][0]["sources"] == ["customer"]


@given(
    st.lists(
        st.tuples(
            st.integers(0, 1), st.sampled_from(["customer", "provider", "third_party", None])
        ),
        max_size=40,
    ),
    st.sets(st.sampled_from(["customer", "provider", "third_party"]), min_size=1),
)
def test_sources_are_the_statement_of_their_parties_measurements_alone(
    probes: list[tuple[int, str | None]], sources: set[str]
) -> None:
    """Naming sources gives the very lines of the same terms over only those parties'
    measurements; what is left out is exactly what the derivation shows aside."""
    observations = [probe(i, value, party) for i, (value, party) in enumerate(probes)]
    kept = [o for o in observations if o.party in sources]
    restricted = availability(terms(sorted(sources)), observations)
    alone = availability(terms(), kept)
    assert (restricted.amount, restricted.derivation.value) == (
        alone.amount,
        alone.derivation.value,
    )
    assert restricted.derivation.events_digest == alone.derivation.events_digest
    aside = restricted.derivation.not_counted
    assert aside is not None and aside.events == len(observations) - len(kept)
