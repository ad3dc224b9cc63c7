"""The README's "First contract in five minutes", run as written against `slapay run` from a
fresh data dir: each request answers the status the section promises, and the month it
closes verifies over HTTP and with `slapay audit verify`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from services.demo import previous_month
from shared.settings import DEFAULT_PORTS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SECTION = "## First contract in five minutes"
# Every curl of the section also reports its status on stderr; the commands stay as written.
WATCH = (
    'curl() { command curl -w "%{stderr}HTTP %{http_code} %{method} %{url_effective}\\n" "$@"; }'
)
CONTRACT = "first-contract"


def section_commands() -> str:
    """The section's sh blocks, in order, `.venv/bin/slapay` being this checkout's CLI."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert SECTION in readme
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) >= 7, "the section lost its steps"
    return "".join(blocks).replace(".venv/bin/slapay", f"{sys.executable} -m services.cli")


def requests_made(stderr: str) -> list[tuple[str, str, int]]:
    """(method, path, status) of each request, a polling loop's repeats as its last one."""
    made: list[tuple[str, str, int]] = []
    for status, method, url in re.findall(r"^HTTP (\d{3}) (\S+) (\S+)$", stderr, re.M):
        request = (method, httpx.URL(url).path, int(status))
        if made and made[-1][:2] == request[:2]:
            made[-1] = request
        else:
            made.append(request)
    return made


def await_ready(process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    pending = set(DEFAULT_PORTS.values())
    while pending and time.monotonic() < deadline and process.poll() is None:
        for port in list(pending):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    pending.discard(port)
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    if pending:
        process.kill()
        pytest.fail(f"slapay run did not get ready:\n{process.communicate()[0]}")


def test_the_first_contract_section_runs_as_written(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAPAY_")}
    env |= {"PYTHONPATH": str(ROOT), "SLAPAY_DEMO": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        await_ready(process)
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", f"{WATCH}\n{section_commands()}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.communicate(timeout=30)
    said = ran.stdout + ran.stderr
    assert ran.returncode == 0, said
    period = previous_month(datetime.now(UTC))[0]
    statement = f"/v1/contracts/{CONTRACT}/statements/{period}"
    assert requests_made(ran.stderr) == [
        ("POST", "/v1/contracts", 201),
        ("POST", "/v1/measurements", 202),
        ("POST", "/v1/reviews", 202),
        ("GET", statement, 200),
        ("GET", "/v1/contracts", 200),
        ("POST", f"/v1/contracts/{CONTRACT}/periods/{period}/close", 202),
        ("GET", statement, 200),
        ("GET", f"{statement}/verify", 200),
    ], said
    assert '"accepted": 4,\n    "duplicates": 0' in ran.stdout
    assert '"total": "925.00"' in ran.stdout, said  # the provisional statement, printed
    assert f'[\n    {{\n        "contract_id": "{CONTRACT}",' in ran.stdout  # GET /v1/contracts
    assert '"verified": true' in ran.stdout
    assert re.search(rf"^OK: {CONTRACT} {period}", ran.stdout, re.M), said
