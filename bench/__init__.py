"""`make bench`: slapay's throughput beside raw baselines measured in the same run.

Two scenarios, each in both run modes: ingest (HTTP batches → the bus, acknowledged) and
the ledger fold (the bus → the ledger database, committed). Every repeat measures slapay
and its baselines on the same fresh broker and database, so a ratio compares like with
like. The suite only prints and writes `.bench/results.json`; it never asserts on timings.
"""
