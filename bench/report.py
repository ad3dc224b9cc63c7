"""The printed table of medians and ratios, the per-repeat numbers, and the JSON document."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.core import Config, Outcome
from bench.environment import REPO

HEADERS = (
    "scenario",
    "mode",
    "slapay median (/s)",
    "baseline",
    "baseline median (/s)",
    "ratio",
    "per repeat",
)
NUMERIC = {2, 4, 5}


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def aligned(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """Plain-text columns: numbers right-aligned, text left-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def summary(outcomes: Sequence[Outcome]) -> str:
    """Medians and ratio (slapay / baseline), one line per baseline, with the ratio within each
    repeat."""
    rows: list[tuple[str, ...]] = []
    for o in outcomes:
        s = o.scenario
        for baseline in s.baselines:
            ours = _rate(o.median(s.slapay))
            rows.append(
                (
                    s.name,
                    s.mode,
                    ours,
                    baseline,
                    _rate(o.median(baseline)),
                    _ratio(o.ratio(baseline)),
                    " ".join(map(_ratio, o.ratios_per_repeat(baseline))),
                )
            )
    notes = [f"{o.scenario.title}: skipped: {o.skipped}" for o in outcomes if o.skipped]
    notes += [f"{o.scenario.title}: FAILED: {o.failed}" for o in outcomes if o.failed]
    return "\n".join([aligned(HEADERS, rows, NUMERIC), *notes])


def repeats(outcomes: Sequence[Outcome]) -> str:
    """Every repeat's number, per scenario and measurement."""
    count = max((len(v) for o in outcomes for v in o.runs.values()), default=0)
    headers = (
        "scenario",
        "mode",
        "records",
        "measurement",
        *(f"#{i + 1} (/s)" for i in range(count)),
    )
    rows = [
        (o.scenario.name, o.scenario.mode, f"{o.records:,}", label, *map(_rate, values))
        for o in outcomes
        for label, values in o.runs.items()
    ]
    numeric = {2, *range(4, 4 + count)}
    return aligned(headers, [(*r, *[""] * (len(headers) - len(r))) for r in rows], numeric)


def document(
    outcomes: Sequence[Outcome], config: Config, seconds: float, load: float
) -> dict[str, Any]:
    """Everything printed, as JSON-ready data."""
    return {
        "config": asdict(config),
        "seconds": round(seconds, 1),
        "host": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "system": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": load,
            **_git(),
        },
        "scenarios": [
            {
                "scenario": o.scenario.name,
                "mode": o.scenario.mode,
                "records": o.records,
                "slapay": o.scenario.slapay,
                "skipped": o.skipped,
                "failed": o.failed,
                "runs": o.runs,
                "medians": {label: o.median(label) for label in o.runs},
                "ratios": {b: o.ratio(b) for b in o.scenario.baselines},
                "ratios_per_repeat": {b: o.ratios_per_repeat(b) for b in o.scenario.baselines},
            }
            for o in outcomes
        ],
    }


def write_json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")


def _git() -> dict[str, Any]:
    """The commit measured, and whether the working tree had changes on top of it."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        )
        return result.stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}
