"""Command line of the bench: pick scenarios and sizes, run them, print and save the results."""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench import (
    agents,
    audit,
    compute,
    eventsourcing_peer,
    fold,
    ingest,
    late,
    replay,
    replicas,
    verification,
)
from bench.core import (
    DISTRIBUTED,
    EMBEDDED,
    Config,
    Outcome,
    Scenario,
    Unavailable,
    progress,
)
from bench.report import document, repeats, summary, write_json
from shared import eventloop

SCENARIOS: tuple[Scenario, ...] = (
    *ingest.SCENARIOS,
    *agents.SCENARIOS,
    *fold.SCENARIOS,
    *replicas.SCENARIOS,
    *compute.SCENARIOS,
    *late.SCENARIOS,
    *replay.SCENARIOS,
    *audit.SCENARIOS,
    *verification.SCENARIOS,
    *eventsourcing_peer.SCENARIOS,
)
QUICK_RECORDS = 5_000


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="slapay throughput beside raw baselines measured in the same run.",
    )
    parser.add_argument("--repeat", type=int, help="repeats per scenario (default 3; --quick: 1)")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: {QUICK_RECORDS:,} records, one repeat"
    )
    parser.add_argument("--records", type=int, help="records per repeat, in both modes")
    parser.add_argument(
        "--scenario",
        choices=sorted({s.name for s in SCENARIOS}),
        action="append",
        help="only this scenario (repeatable)",
    )
    parser.add_argument(
        "--mode",
        choices=[DISTRIBUTED, EMBEDDED, compute.PURE],
        action="append",
        help="only this run mode",
    )
    parser.add_argument(
        "--concurrency", type=int, default=Config.concurrency, help="ingest requests in flight"
    )
    parser.add_argument(
        "--output", type=Path, default=Path(".bench/results.json"), help="JSON results file"
    )
    return parser.parse_args(argv)


def config_of(args: argparse.Namespace) -> Config:
    config = Config(concurrency=args.concurrency)
    if args.quick:
        config = dataclasses.replace(
            config, kafka_records=QUICK_RECORDS, embedded_records=QUICK_RECORDS, repeat=1
        )
    if args.records:
        config = dataclasses.replace(
            config, kafka_records=args.records, embedded_records=args.records
        )
    if args.repeat:
        config = dataclasses.replace(config, repeat=args.repeat)
    return config


async def run_scenario(scenario: Scenario, config: Config) -> Outcome:
    """Every repeat of one scenario; a missing broker or database skips it, an error fails it."""
    outcome = Outcome(scenario, config.records(scenario.mode))
    for turn in range(config.repeat):
        progress(
            f"{scenario.title}: repeat {turn + 1}/{config.repeat}, {outcome.records:,} records"
        )
        try:
            outcome.add(await scenario.run_once(config, turn))
        except Unavailable as exc:
            outcome.skipped = str(exc)
            progress(f"{scenario.title}: skipped: {exc}")
            break
        except Exception as exc:
            traceback.print_exc()
            outcome.failed = f"{type(exc).__name__}: {exc}"[:500]
            break
    return outcome


async def run(scenarios: Sequence[Scenario], config: Config) -> list[Outcome]:
    return [await run_scenario(s, config) for s in scenarios]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    config = config_of(args)
    chosen = [
        s
        for s in SCENARIOS
        if (not args.scenario or s.name in args.scenario) and (not args.mode or s.mode in args.mode)
    ]
    load = os.getloadavg()[0]
    started = time.perf_counter()
    outcomes = eventloop.run(run(chosen, config))
    seconds = time.perf_counter() - started
    print(summary(outcomes))
    print()
    print(repeats(outcomes))
    print(
        f"\n{len(chosen)} scenarios, {config.repeat} repeat(s) each, in {seconds:.0f}s"
        f" (load average at start {load:.1f} on {os.cpu_count()} CPUs)"
    )
    write_json(args.output, document(outcomes, config, seconds, load))
    print(f"results: {args.output}")
    return 1 if any(o.failed for o in outcomes) else 0
