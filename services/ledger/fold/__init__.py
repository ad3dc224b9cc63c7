"""The ledger's fold: every event of the contracts, measurements and reviews topics into
durable state, a batch per transaction (docs/architecture.md, "The flow").

- `apply.py` applies a batch: terms, measurements (late ones become corrections), reviews,
  then close requests and disputes;
- `rows.py` is its write path for measurements and the running aggregates.
The bus edge that runs it is `services/ledger/consumer.py`.
"""
