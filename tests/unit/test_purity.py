"""The core stays pure: importing any module of `shared/core` or the ledger's domain pulls in
no web, database, bus or telemetry code."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PURE_PACKAGES = {
    "shared.core": ROOT / "shared/core",
    "services.ledger.domain": ROOT / "services/ledger/domain",
}
PURE_MODULES = sorted(
    f"{package}.{path.stem}"
    for package, folder in PURE_PACKAGES.items()
    for path in folder.glob("*.py")
    if path.stem != "__init__"
)
FORBIDDEN = ["fastapi", "sqlalchemy", "aiokafka", "asyncpg", "httpx", "opentelemetry"]


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
    assert len(PURE_MODULES) >= 13  # the whole core and the ledger's domain
