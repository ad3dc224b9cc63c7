"""The portal's pages as HTML: sign-in, the contracts a token may see, one contract.

Everything a visitor or the data supplies goes through `markup.html`, which escapes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.statements import charts
from services.statements.exports import filename, signature_check
from services.statements.markup import Html, html, join, path
from services.statements.printable import line_rows
from services.statements.tickets_html import tickets_html
from services.statements.views import Overview, review_summary
from shared.auth import Principal
from shared.signing import Keyring

LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · slapay</title>
<link rel="stylesheet" href="/static/portal.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head>
<body><header class="top"><a class="brand" href="/">slapay</a>{who}</header>
<main>{content}</main>
<footer>Statements follow from measured service levels and reviews; every line shows how.
</footer></body></html>
"""

SIGN_IN = """<section class="card narrow"><h1>Sign in</h1>
<p>Paste the token you were given (for example by
<code>slapay token issue --role customer --contract ID</code>).</p>{error}
<form method="post" action="/sign-in"><label for="token">Token</label>
<textarea id="token" name="token" rows="5" required autocomplete="off" spellcheck="false">
</textarea><button type="submit">Sign in</button></form>
<p class="note">The token stays in this browser only, in a cookie that scripts cannot read,
until you sign out or close the browser.</p></section>"""


def layout(title: str, content: Html, principal: Principal | None = None) -> Html:
    who = Html("")
    if principal is not None:
        scope = "all contracts" if principal.role == "admin" else ", ".join(principal.contracts)
        who = html(
            '<span class="who">{role} · {scope}</span><form method="post" action="/sign-out">'
            '<button class="link" type="submit">Sign out</button></form>',
            role=principal.role,
            scope=scope,
        )
    return html(LAYOUT, title=title, who=who, content=content)


def sign_in(error: str = "") -> Html:
    message = html('<p class="error" role="alert">{e}</p>', e=error) if error else ""
    return layout("Sign in", html(SIGN_IN, error=message))


def not_found(principal: Principal | None, what: str) -> Html:
    content = html('<section class="card"><h1>Not found</h1><p>{w}</p>', w=what)
    return layout(
        "Not found", Html(content + '<p><a href="/">All contracts</a></p></section>'), principal
    )


def _summary(statement: dict[str, Any]) -> Html:
    return html(
        "{period} · {status} · <strong>{total} {currency}</strong>",
        period=statement["period"],
        status=statement["status"],
        total=statement["total"],
        currency=statement["currency"],
    )


def index(principal: Principal, contracts: Sequence[tuple[str, list[dict[str, Any]]]]) -> Html:
    """The contracts the token may see, each with its latest statement (and its latest final
    one, when the current month is still open)."""
    items = []
    for contract_id, statements in contracts:
        latest = statements[-1] if statements else None
        finals = [s for s in statements if s["status"] == "final"]
        summary = _summary(latest) if latest else Html("no statements yet")
        if latest and finals and finals[-1] is not latest:
            summary = html("{s} · last final {f}", s=summary, f=_summary(finals[-1]))
        items.append(
            html(
                '<li class="card"><a href="{href}">{id}</a><span>{summary}</span></li>',
                href=path("contracts", contract_id),
                id=contract_id,
                summary=summary,
            )
        )
    body = join(items) or Html('<li class="card">This token lists no contracts.</li>')
    return layout(
        "Contracts", html('<h1>Contracts</h1><ul class="contracts">{i}</ul>', i=body), principal
    )


def contract(principal: Principal, view: Overview, keyring: Keyring) -> Html:
    """One contract: charts over its periods, then each statement, newest first."""
    parties = view.parties
    named = (
        html('<p class="parties">{p} for {c}</p>', p=parties["provider"], c=parties["customer"])
        if parties
        else ""
    )
    heading = html(
        '<nav class="crumbs"><a href="/">Contracts</a> &rsaquo; {id}</nav><h1>{id}</h1>{named}',
        id=view.contract_id,
        named=named,
    )
    if not view.statements:
        return layout(view.contract_id, Html(heading + "<p>No statements yet.</p>"), principal)
    statements = [_statement(view, s, keyring) for s in reversed(view.statements)]
    return layout(view.contract_id, join([heading, _charts(view), *statements]), principal)


def _charts(view: Overview) -> Html:
    figures = [
        _figure(charts.compliance_chart(view.periods, view.met, view.measured), "SLA compliance"),
        *(
            _figure(charts.kpi_chart(k.name, k.objective, k.target, k.points), k.name)
            for k in view.kpis
        ),
    ]
    legend = join(
        html('<li><span class="swatch {css}"></span>{label}</li>', css=s.css, label=s.label)
        for s in view.money
    )
    money = Html("")
    if view.money:
        chart = charts.money_chart(view.periods, view.money, view.currency)
        money = _figure(
            html('{c}<ul class="legend">{lg}</ul>', c=chart, lg=legend), "Credits and bonuses"
        )
    return html(
        '<section><h2>Service levels and money over time</h2><div class="charts">{f}{m}</div>'
        "</section>",
        f=join(figures),
        m=money,
    )


def _figure(svg: Html, caption: str) -> Html:
    return html(
        '<figure class="card">{svg}<figcaption>{c}</figcaption></figure>', svg=svg, c=caption
    )


def _statement(view: Overview, statement: dict[str, Any], keyring: Keyring) -> Html:
    period = statement["period"]
    api = path("v1", "contracts", view.contract_id, "statements", period)
    lines, derivations = line_rows(statement)
    return html(
        STATEMENT,
        anchor=f"period-{period}",
        period=period,
        status=statement["status"],
        total=statement["total"],
        currency=statement["currency"],
        check=signature_check(keyring, statement),
        csv=html("{a}?format=csv", a=api),
        printable=html("{a}?format=html", a=api),
        json=html("{a}?format=json", a=api),
        json_name=filename(statement, "json"),
        lines=lines,
        derivations=derivations,
        reviews=_reviews(statement),
        tickets=tickets_html(statement, view.breaches.get(period, [])),
        disputes=_disputes(view.disputes.get(period, [])),
    )


STATEMENT = """<article class="card statement" id="{anchor}">
<header><h3>{period}</h3><span class="badge {status}">{status}</span>
<span class="total">{total} {currency}</span></header>
<p class="check">Signature: {check}</p>
<p class="downloads"><a href="{csv}" download>Download CSV</a>
<a href="{printable}" target="_blank" rel="noopener">Printable statement</a>
<a href="{json}" download="{json_name}">Signed JSON</a></p>
<div class="scroll"><table class="lines"><thead><tr><th>#</th><th>Kind</th><th>KPI</th>
<th>Description</th>
<th class="num">Amount</th></tr></thead><tbody>{lines}</tbody>
<tfoot><tr><td colspan="4">Total</td><td class="num">{total}</td></tr></tfoot></table></div>
<details><summary>How each line was derived</summary><div class="scroll"><table><thead><tr>
<th>#</th><th>Aggregation</th><th>Value</th><th>Target</th><th class="num">Tier %</th>
<th class="num">Events</th><th>Events digest</th><th>Reason</th></tr></thead>
<tbody>{derivations}</tbody></table></div></details>
{reviews}{tickets}{disputes}</article>"""


def _reviews(statement: dict[str, Any]) -> Html:
    summary = review_summary(statement)
    if summary is None:
        return Html("")
    mean = "—" if summary["mean"] is None else f"{summary['mean']:.2f}"
    return html(
        '<p class="reviews">Reviews: {n} reviewer(s), mean rating {mean} against neutral {neutral}'
        "{reason}; review line {amount}.</p>",
        n=summary["reviews"],
        mean=mean,
        neutral=summary["neutral"],
        reason=f" ({summary['reason'].replace('_', ' ')})" if summary["reason"] else "",
        amount=summary["amount"],
    )


def _disputes(disputes: list[dict[str, Any]]) -> Html:
    if not disputes:
        return Html("")
    rows = join(
        html(
            '<tr><td>{line}</td><td><span class="badge {status}">{status}</span></td>'
            "<td>{reason}</td><td>{note}</td></tr>",
            line=d.get("line_id"),
            status=d.get("status"),
            reason=d.get("reason"),
            note=(d.get("resolution") or {}).get("note", ""),
        )
        for d in disputes
    )
    return html(
        '<h4>Disputes</h4><div class="scroll"><table><thead><tr><th>Line</th><th>State</th>'
        "<th>Reason</th><th>Decision note</th></tr></thead><tbody>{rows}</tbody></table></div>",
        rows=rows,
    )
