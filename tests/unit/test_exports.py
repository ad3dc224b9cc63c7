"""Statement exports and portal pages: negotiation, CSV column order, escaping everywhere."""

from __future__ import annotations

import base64
import copy
import csv
import hashlib
import io
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.statements import charts, exports, pages, printable, views
from services.statements.markup import Html, html, path
from shared import signing
from shared.auth import Principal
from tests.unit.test_signing import STATEMENT

EVIL = '<script>alert("x")</script>'


def statement(**overrides: Any) -> dict[str, Any]:
    document = copy.deepcopy(STATEMENT)
    document["lines"].insert(
        0,
        {
            "line_id": "acme-2026:2026-09:base_fee:",
            "kind": "base_fee",
            "kpi": None,
            "amount": "10000.00",
            "description": "Base fee, incl. support",
            "derivation": {"aggregation": None, "value": None, "events": 0, "base_fee": "10000.00"},
        },
    )
    document["parties"] = {"provider": "Hosting Co", "customer": "Acme GmbH"}
    document.update(overrides)
    return document


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "json"),
        ("", "json"),
        ("*/*", "json"),
        ("application/json", "json"),
        ("text/csv", "csv"),
        ("text/html", "html"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "html"),
        ("text/csv;q=0.5, application/json", "json"),
        ("application/json;q=0.2, text/csv", "csv"),
        ("TEXT/CSV; charset=utf-8", "csv"),
        ("text/*", "html"),
        ("application/xml", None),
        ("text/csv;q=0", None),
        ("*/*, text/csv;q=0", "json"),
    ],
)
def test_content_negotiation(accept: str | None, expected: str | None) -> None:
    assert exports.negotiate(accept) == expected


def test_csv_has_a_stable_header_and_one_row_per_line() -> None:
    text = exports.to_csv(statement())
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(exports.CSV_COLUMNS)
    assert rows[0][:10] == [
        "contract_id",
        "period",
        "status",
        "terms_version",
        "currency",
        "line_id",
        "kind",
        "kpi",
        "amount",
        "description",
    ]
    assert len(rows) == 1 + len(statement()["lines"])
    by_column = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["amount"] for r in by_column] == ["10000.00", "-1000.00"]  # decimal strings
    credit = by_column[1]
    assert credit["value"] == "0.995" and credit["target"] == "0.999"
    assert credit["events"] == "1000" and credit["terms_version"] == "1"
    assert credit["derivation"] == (
        '{"aggregation":"mean","events":1000,"target":0.999,"value":0.995}'
    )
    assert by_column[0]["kpi"] == "" and by_column[0]["value"] == ""
    assert by_column[0]["description"] == "Base fee, incl. support"  # quoted, not split


def test_csv_text_cells_cannot_become_spreadsheet_formulas() -> None:
    document = statement()
    document["lines"][1]["description"] = '=HYPERLINK("http://evil.example","click")'
    document["lines"][1]["kpi"] = "@SUM(A1)"
    rows = list(csv.reader(io.StringIO(exports.to_csv(document))))
    row = dict(zip(rows[0], rows[2], strict=True))
    assert row["description"].startswith("'=HYPERLINK")
    assert row["kpi"] == "'@SUM(A1)"
    assert row["amount"] == "-1000.00"  # numbers keep their sign


def test_filenames_are_safe() -> None:
    assert exports.filename({"contract_id": 'a"b/c', "period": "2026-09"}, "csv") == (
        "a_b_c-2026-09.csv"
    )


def test_the_printable_statement_shows_everything_and_escapes_it() -> None:
    ring = signing.Keyring.of(Ed25519PrivateKey.generate())
    document = ring.sign(statement())
    document["lines"][1]["description"] = EVIL
    document["parties"] = {"provider": "Hosting & Co", "customer": EVIL}
    page = printable.to_html(document, "valid", "https://x/.well-known/slapay-keys.json", "now")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "Hosting &amp; Co" in page
    for shown in (
        "2026-09",
        "acme-2026",
        "9000.00",
        "-1000.00",
        "0.995",
        document["signature"]["kid"],
    ):
        assert shown in page
    assert document["signature"]["value"] in page
    assert "FINAL" in page
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in printable.PRINT_CSP
    provisional = printable.to_html(statement(status="provisional"), "-", "k", "now")
    assert "PROVISIONAL" in provisional


def test_markup_escapes_values_but_not_markup_or_numbers() -> None:
    assert html('<a title="{t}">{b}</a>', t='" onclick="x', b=Html("<b>ok</b>")) == (
        '<a title="&quot; onclick=&quot;x"><b>ok</b></a>'
    )
    assert html("{x:.1f}", x=1.25) == "1.2"
    assert path("contracts", "a/b?c") == "/contracts/a%2Fb%3Fc"


def test_charts_and_pages_escape_what_the_data_says() -> None:
    svg = charts.kpi_chart(EVIL, ">=", 0.999, [charts.KpiPoint("2026-09", 0.995, False)])
    assert "<script>" not in svg and svg.startswith("<svg")
    document = statement()
    document["lines"][1]["kpi"] = EVIL
    document["lines"][1]["kind"] = "sla_credit"
    dispute = {"period": "2026-09", "line_id": EVIL, "status": "open", "reason": EVIL}
    view = views.overview("acme-2026", [document], [dispute])
    ring = signing.Keyring.of(Ed25519PrivateKey.generate()).public()
    who = Principal("customer", frozenset({"acme-2026", EVIL}), "s", "t")
    page = pages.contract(who, view, ring)
    assert "<script>" not in page
    assert page.count("&lt;script&gt;") >= 3
    assert "?format=csv" in page and "INVALID" in page  # unsigned final statement
    assert "<script>" not in pages.sign_in(EVIL)
    assert "<script>" not in pages.index(who, [(EVIL, [document])])


def test_the_overview_plots_kpis_against_targets_and_money_per_period() -> None:
    september = statement()
    october = copy.deepcopy(september)
    october["period"] = "2026-10"
    october["lines"][1]["derivation"]["value"] = 0.9995
    october["lines"][1]["amount"] = "0.00"
    view = views.overview("acme-2026", [october, september], [])
    assert view.periods == ["2026-09", "2026-10"]
    assert [p.met for p in view.kpis[0].points] == [False, True]
    assert (view.met, view.measured) == ([0, 1], [1, 1])
    assert [str(a) for a in view.money[0].amounts] == ["-1000.00", "0.00"]
    assert view.parties == {"provider": "Hosting Co", "customer": "Acme GmbH"}
