"""`slapay replay`: `services.ledger.replay.replay(bus, fresh_engine)` over one contract's
history (terms, N measurements, a close and the journal it posted), beside the raw read of
the same four topics (`bus.read_all`) and the live fold that made the history, in the same
run. Events per second count every record on the topics replay reads. The `slapay replay`
command also runs once as its own process (rebuilding into a temporary SQLite file, its
default), for its peak RSS.

Each repeat builds the history anew (`bench.history`) on a fresh broker and database;
each replay rebuilds into a fresh, empty database of the same kind, created before the
clock starts, and must reach the live chain head, or the scenario fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.core import (
    DISTRIBUTED,
    EMBEDDED,
    BenchError,
    Config,
    Rates,
    Scenario,
    progress,
    run_steps,
)
from bench.environment import REPO, server_env
from bench.history import (
    CONTRACT,
    RAW_READ,
    Built,
    Ledger,
    build,
    ledger,
    measurement_messages,
    read_rate,
)
from services.ledger.replay import replay

SLAPAY = "slapay replay"
LIVE_FOLD = "live fold of the same events (read_all + decode + apply_delivered)"


async def replay_rate(env: Ledger, built: Built) -> float:
    """Bus records per second through `replay` into a fresh database; checks the head."""
    async with env.fresh_engine() as target:
        start = time.perf_counter()
        outcomes = await replay(env.bus, target)
        seconds = time.perf_counter() - start
    if [(o.contract_id, o.matches, o.entries) for o in outcomes] != [
        (CONTRACT, True, built.entries)
    ] or outcomes[0].replayed_head != built.head:
        raise BenchError(f"replay did not reach the live head {built.head}: {outcomes}")
    return built.bus_records / seconds


PEAK_RSS = "MB: peak RSS of the `slapay replay` process (not a rate)"


async def replay_process_rss(env: Ledger) -> float:
    """Run `slapay replay` against the bus as its own process; its peak RSS in MB, read as
    its `VmHWM` (the kernel's `ru_maxrss` of a child would also count the pages of this
    large parent that it ran on before `exec`)."""
    settings = {"bus": env.settings.bus, "data_dir": str(env.settings.data_dir)}
    args = [sys.executable, "-m", "services.cli", "replay"]
    process = await asyncio.create_subprocess_exec(
        *args, cwd=REPO, env=server_env(settings), stdout=asyncio.subprocess.DEVNULL
    )
    peak_kib = 0
    while process.returncode is None:
        peak_kib = max(peak_kib, _high_water_kib(process.pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 0.02)
    if process.returncode != 0:
        raise BenchError(f"slapay replay exited with status {process.returncode}")
    progress(f"  slapay replay process: peak RSS {peak_kib / 1024:.0f} MB")
    return peak_kib / 1024


def _high_water_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone meanwhile, or no /proc
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_for(mode: str) -> Callable[[Config, int], Awaitable[Rates]]:
    async def run_once(config: Config, turn: int) -> Rates:
        messages = measurement_messages(config.records(mode))
        async with ledger(mode) as env:
            built = await build(env.settings, env.bus, env.engine, messages)
            rates = await run_steps(
                [
                    (SLAPAY, lambda: replay_rate(env, built)),
                    (RAW_READ, lambda: read_rate(env, built)),
                ],
                turn,
            )
            peak = await replay_process_rss(env)
        return {**rates, LIVE_FOLD: built.measurements / built.fold_s, PEAK_RSS: peak}

    return run_once


SCENARIOS = (
    Scenario("ledger-replay", DISTRIBUTED, SLAPAY, (RAW_READ, LIVE_FOLD), run_for(DISTRIBUTED)),
    Scenario("ledger-replay", EMBEDDED, SLAPAY, (RAW_READ, LIVE_FOLD), run_for(EMBEDDED)),
)
