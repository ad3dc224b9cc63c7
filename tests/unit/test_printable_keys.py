"""The printable statement's keys link: the configured public URL, else a path on the
service that served it, never the request's Host."""

from __future__ import annotations

from services.statements import exports, printable


def test_keys_url_is_the_configured_base_or_a_path() -> None:
    assert exports.keys_url(None) == "/.well-known/slapay-keys.json"
    assert (
        exports.keys_url("https://statements.example.com/")
        == "https://statements.example.com/.well-known/slapay-keys.json"
    )


def test_the_page_shows_a_command_that_works_either_way() -> None:
    statement = {"contract_id": "acme-2026", "period": "2026-10", "status": "final"}
    relative = printable.to_html(statement, "-", exports.keys_url(None), "now")
    assert '<a href="/.well-known/slapay-keys.json">' in relative
    assert "--keys $STATEMENTS_URL/.well-known/slapay-keys.json" in relative
    configured = exports.keys_url("https://statements.example.com")
    absolute = printable.to_html(statement, "-", configured, "now")
    assert f"--keys {configured}</code>" in absolute
