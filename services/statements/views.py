"""What the portal shows, read from the statements read model: pure shaping, no HTML."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.statements import store
from services.statements.charts import KpiPoint, MoneySeries
from shared.auth import Principal

MONEY_KINDS = (
    ("SLA credits", "credit", ("sla_credit", "credit_cap")),
    ("Review bonus or penalty", "review", ("review_adjustment",)),
    ("Adjustments", "adjustment", ("adjustment",)),
)


async def visible_contracts(engine: AsyncEngine, principal: Principal) -> list[str]:
    """Admin: every contract with a statement; anyone else: the token's contracts."""
    if principal.role != "admin":
        return sorted(principal.contracts)
    async with engine.connect() as conn:
        query = select(store.statements.c.contract_id).distinct()
        return sorted(row.contract_id for row in await conn.execute(query))


@dataclass(frozen=True)
class KpiHistory:
    name: str
    objective: str
    target: float
    points: list[KpiPoint]


@dataclass
class Overview:
    """A contract's statements (oldest first) and what the charts plot from them."""

    contract_id: str
    statements: list[dict[str, Any]]
    disputes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    kpis: list[KpiHistory] = field(default_factory=list)
    met: list[int] = field(default_factory=list)
    measured: list[int] = field(default_factory=list)
    money: list[MoneySeries] = field(default_factory=list)
    breaches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per period, the breached tickets published with its statement (docs/tickets.md)."""

    @property
    def periods(self) -> list[str]:
        return [s["period"] for s in self.statements]

    @property
    def currency(self) -> str:
        return str(self.statements[-1]["currency"]) if self.statements else ""

    @property
    def parties(self) -> dict[str, str]:
        for statement in reversed(self.statements):
            if statement.get("parties"):
                return dict(statement["parties"])
        return {}


def met_target(derivation: dict[str, Any]) -> bool | None:
    """Whether a KPI line's value meets its target (None without data)."""
    value, target = derivation.get("value"), derivation.get("target")
    if value is None or target is None:
        return None
    return bool(value <= target) if derivation.get("objective") == "<=" else bool(value >= target)


def overview(
    contract_id: str,
    statements: Sequence[dict[str, Any]],
    disputes: Sequence[dict[str, Any]],
    breaches: dict[str, list[dict[str, Any]]] | None = None,
) -> Overview:
    """Shape the statements, disputes and breached tickets of one contract for the portal."""
    ordered = sorted(statements, key=lambda s: s["period"])
    view = Overview(contract_id, ordered, breaches=dict(breaches or {}))
    for dispute in disputes:
        view.disputes.setdefault(str(dispute.get("period")), []).append(dispute)
    by_kpi: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for statement in ordered:
        kpi_lines = [
            line for line in statement["lines"] if line["kind"] == "sla_credit" and line.get("kpi")
        ]
        verdicts = [met_target(line["derivation"]) for line in kpi_lines]
        view.met.append(sum(1 for v in verdicts if v))
        view.measured.append(sum(1 for v in verdicts if v is not None))
        for line in kpi_lines:
            by_kpi[line["kpi"]][statement["period"]] = line["derivation"]
    for name, per_period in by_kpi.items():
        latest = per_period[max(per_period)]
        points = [
            KpiPoint(
                period,
                per_period[period].get("value") if period in per_period else None,
                met_target(per_period[period]) if period in per_period else None,
            )
            for period in view.periods
        ]
        if latest.get("target") is not None:
            objective = str(latest.get("objective") or ">=")
            view.kpis.append(KpiHistory(name, objective, float(latest["target"]), points))
    for label, css, kinds in MONEY_KINDS:
        amounts = [_sum(s, kinds) for s in ordered]
        if any(amounts):
            view.money.append(MoneySeries(label, css, amounts))
    return view


def _sum(statement: dict[str, Any], kinds: tuple[str, ...]) -> Decimal:
    lines = statement["lines"]
    return sum((Decimal(x["amount"]) for x in lines if x["kind"] in kinds), Decimal(0))


def review_summary(statement: dict[str, Any]) -> dict[str, Any] | None:
    """What the statement's review line says about the period's ratings, if it has one."""
    for line in statement["lines"]:
        if line["kind"] == "review_adjustment":
            d = line["derivation"]
            return {
                "reviews": d.get("reviews", d.get("events")),
                "mean": d.get("value"),
                "neutral": d.get("target"),
                "percent": d.get("percent"),
                "reason": d.get("reason"),
                "flags": d.get("flags"),
                "amount": line["amount"],
            }
    return None


def ticket_summary(
    statement: dict[str, Any], breaches: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Per ticket KPI line: how many tickets it covered, how many of them were past its
    bound (breached, running past it at close included; docs/tickets.md) and, where the
    ledger published them with the statement, which ones and their business hours."""
    published = {b["kpi"]: b for b in breaches}
    found = []
    for line in statement["lines"]:
        d = line["derivation"]
        if line["kind"] != "sla_credit" or d.get("tickets") is None:
            continue
        tickets, share, threshold = int(d["tickets"]), d.get("value"), d.get("threshold")
        breached = None
        if threshold is not None and share is not None:
            breached = tickets - round(Decimal(str(share)) * tickets)
        listed = published.get(line["kpi"])
        if listed is not None:
            breached = int(listed["breached"])
        found.append(
            {
                "kpi": line["kpi"],
                "tickets": tickets,
                "threshold": threshold,
                "breached": breached,
                "aggregation": d.get("aggregation"),
                "value": share,
                "breached_tickets": [] if listed is None else list(listed["tickets"]),
            }
        )
    return found
