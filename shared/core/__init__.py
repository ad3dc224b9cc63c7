"""The pure core: the payment formula, terms, money, exact aggregates, statements, the review
score, the journal's hash chain, periods, business calendars and the ticket clock.

Plain values in, plain values out: nothing here imports a web framework, a database driver,
a bus client or telemetry (`tests/unit/test_purity.py`), so the ledger and the auditor call
the very same code (docs/architecture.md, "Where things live")."""
