"""The payment core stays pure: importing it pulls in no web, database, bus or telemetry code."""

import json
import subprocess
import sys
from pathlib import Path

PURE_MODULES = [
    "shared.payment",
    "shared.terms",
    "shared.money",
    "shared.aggregates",
    "shared.calendars",
    "shared.clock",
    "shared.tickets",
]
FORBIDDEN = ["fastapi", "sqlalchemy", "aiokafka", "opentelemetry"]
ROOT = Path(__file__).resolve().parents[2]


def test_the_payment_core_imports_no_infrastructure() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {PURE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = json.loads(result.stdout)
    offenders = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert set(PURE_MODULES) <= set(loaded)
