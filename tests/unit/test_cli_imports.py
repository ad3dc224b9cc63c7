"""`slapay --help` and `slapay token issue` answer without loading the audit, the database
or broker clients, or the web stack: each command imports what it needs when it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["shared.audit", "sqlalchemy", "fastapi", "aiokafka", "uvicorn"]
SCRIPT = (
    "import json, sys\n"
    "from services.cli import app\n"
    "try:\n"
    "    app(sys.argv[1:])\n"
    "except SystemExit:\n"
    "    pass\n"
    "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
)


def loaded_by(*argv: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAPAY_")}
    env["SLAPAY_AUTH_SECRET"] = "cli-imports-" + "s" * 40
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    modules: list[str] = json.loads(result.stderr.strip().splitlines()[-1])
    return modules


@pytest.mark.parametrize(
    "argv", [("--help",), ("audit", "--help"), ("token", "issue", "--role", "admin")]
)
def test_a_light_command_loads_no_heavy_module(argv: tuple[str, ...]) -> None:
    loaded = loaded_by(*argv)
    assert "services.cli" in loaded
    offenders = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert offenders == []
