"""A statement as a printable HTML page that a customer's accountant can file: parties,
period, terms version, lines, derivations, totals, the journal's hashes and the signature.

Self-contained (one file, inline style allowed by its hash in the page's CSP), so a saved
copy prints the same.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785

from services.statements.markup import Html, html, join

PRINT_STYLE = """
body{font:11pt/1.4 "DejaVu Sans",Arial,sans-serif;color:#111;max-width:60rem;margin:1.5rem auto;
padding:0 1rem}h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.5rem 0 .4rem;
border-bottom:1px solid #999}table{border-collapse:collapse;width:100%}th,td{text-align:left;
padding:.25rem .4rem;border-bottom:1px solid #ddd;vertical-align:top}td.num,th.num{text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}tfoot td{font-weight:bold;border-top:2px solid
#111}.mono{font-family:"DejaVu Sans Mono",monospace;font-size:8.5pt;word-break:break-all}.status{
display:inline-block;padding:.1rem .5rem;border:1px solid #111;font-weight:bold}.provisional{
color:#8a4b00;border-color:#8a4b00}.note{color:#444;font-size:9pt}dl{display:grid;
grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}dt{font-weight:bold}dd{margin:0}
@media print{body{margin:0;max-width:none}a{color:inherit;text-decoration:none}}
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(PRINT_STYLE.encode()).digest()).decode()
PRINT_CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)


def number(value: Any) -> str:
    """A JSON number as RFC 8785 writes it (empty for None)."""
    return "" if value is None else rfc8785.dumps(value).decode()


def _details(items: list[tuple[str, Any]]) -> Html:
    return join(html("<dt>{k}</dt><dd>{v}</dd>", k=k, v="—" if v is None else v) for k, v in items)


def line_rows(statement: Mapping[str, Any]) -> tuple[Html, Html]:
    """Table rows of the lines and of their derivations, numbered alike."""
    lines, derivations = [], []
    for n, line in enumerate(statement.get("lines", []), start=1):
        d = line.get("derivation") or {}
        lines.append(
            html(
                '<tr><td class="n">{n}</td><td class="kind">{kind}</td><td class="kpi">{kpi}</td>'
                '<td class="text">{text}</td><td class="num">{amount}</td></tr>',
                n=n,
                kind=line.get("kind"),
                kpi=line.get("kpi") or "",
                text=line.get("description"),
                amount=line.get("amount"),
            )
        )
        target = f"{d.get('objective') or ''} {number(d.get('target'))}".strip()
        derivations.append(
            html(
                "<tr><td>{n}</td><td>{agg}</td><td>{value}</td><td>{target}</td>"
                '<td class="num">{tier}</td><td class="num">{events}</td>'
                '<td class="mono">{digest}</td><td>{reason}</td></tr>',
                n=n,
                agg=d.get("aggregation") or "",
                value=number(d.get("value")),
                target=target,
                tier=number(d.get("tier_percent") if "tier_percent" in d else d.get("percent")),
                events=number(d.get("events")),
                digest=d.get("events_digest"),
                reason=d.get("reason") or "",
            )
        )
    return join(lines), join(derivations)


STATEMENTS_URL = "$STATEMENTS_URL"  # stands for this service's address when none is configured


def to_html(
    statement: Mapping[str, Any], signature_check: str, keys_url: str, generated_at: str
) -> Html:
    """The printable statement: parties, terms, lines, derivations, totals, chain, signature."""
    parties = statement.get("parties") or {}
    final = statement.get("status") == "final"
    lines, derivations = line_rows(statement)
    entries = join(
        html(
            '<tr><td class="mono">{id}</td><td class="mono">{prev}</td>'
            '<td class="mono">{h}</td></tr>',
            id=e.get("entry_id"),
            prev=e.get("prev_hash"),
            h=e.get("hash"),
        )
        for e in statement.get("entries", [])
    )
    signature = statement.get("signature") or {}
    disputes = join(
        html(
            "<tr><td>{line}</td><td>{status}</td><td>{reason}</td></tr>",
            line=d.get("line_id"),
            status=d.get("status"),
            reason=d.get("reason"),
        )
        for d in statement.get("disputes", [])
    )
    return html(
        PAGE,
        style=Html(PRINT_STYLE),
        title=f"Statement {statement.get('contract_id')} {statement.get('period')}",
        status_class="status" if final else "status provisional",
        status="FINAL" if final else "PROVISIONAL — not final, amounts may still change",
        parties=_details(
            [
                ("Provider", parties.get("provider")),
                ("Customer", parties.get("customer")),
                ("Contract", statement.get("contract_id")),
                ("Period", statement.get("period")),
                ("Terms version", statement.get("terms_version")),
                ("Currency", statement.get("currency")),
                ("Closed at", statement.get("closed_at")),
            ]
        ),
        lines=lines,
        currency=statement.get("currency"),
        total=statement.get("total"),
        derivations=derivations,
        entries=entries or html('<tr><td colspan="3">No journal entries yet.</td></tr>'),
        signature=_details(
            [
                ("Algorithm", signature.get("alg")),
                ("Key id", signature.get("kid")),
                ("Signature", html('<span class="mono">{v}</span>', v=signature.get("value"))),
                ("Check", signature_check),
            ]
        ),
        keys_url=keys_url,
        keys_arg=keys_url
        if keys_url.startswith(("https://", "http://"))
        else STATEMENTS_URL + keys_url,
        disputes=html(DISPUTES, rows=disputes) if disputes else "",
        generated_at=generated_at,
    )


DISPUTES = """<h2>Disputes</h2><p class="note">The current state of disputes; it is not part of
the signed statement.</p><table><thead><tr><th>Line</th><th>Status</th><th>Reason</th></tr>
</thead><tbody>{rows}</tbody></table>"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body><h1>{title}</h1><p><span class="{status_class}">{status}</span></p>
<h2>Parties and terms</h2><dl>{parties}</dl>
<h2>Lines</h2><table><thead><tr><th>#</th><th>Kind</th><th>KPI</th><th>Description</th>
<th class="num">Amount ({currency})</th></tr></thead><tbody>{lines}</tbody>
<tfoot><tr><td colspan="4">Total</td><td class="num">{total}</td></tr></tfoot></table>
<h2>Derivations</h2><table><thead><tr><th>#</th><th>Aggregation</th><th>Value</th>
<th>Target</th><th class="num">Tier %</th><th class="num">Events</th><th>Events digest</th>
<th>Reason</th></tr></thead><tbody>{derivations}</tbody></table>
<h2>Journal entries (hash chain)</h2><table><thead><tr><th>Entry</th><th>Previous hash</th>
<th>Hash</th></tr></thead><tbody>{entries}</tbody></table>
<h2>Signature</h2><dl>{signature}</dl>
<p class="note">The signature is Ed25519 over the RFC 8785 canonical JSON of the statement
without its <code>signature</code> and <code>disputes</code> members. Public keys:
<a href="{keys_url}">{keys_url}</a>. Verify a downloaded statement JSON offline with
<code>slapay audit verify-signature statement.json --keys {keys_arg}</code>.</p>
{disputes}
<p class="note">Generated {generated_at} by slapay.</p></body></html>
"""
