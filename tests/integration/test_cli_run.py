"""`slapay run` from a fresh data dir: four healthy services and a readable demo statement."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from services.demo import DEMO_CONTRACT, previous_month
from shared.settings import DEFAULT_PORTS

pytestmark = pytest.mark.integration


def slapay(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_serves_the_demo_statement(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAPAY_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job
    )
    try:
        period = previous_month(datetime.now(UTC))[0]
        token = slapay(
            "token",
            "issue",
            "--role",
            "customer",
            "--contract",
            DEMO_CONTRACT,
            cwd=tmp_path,
            env=env,
        ).stdout.strip()
        url = f"http://127.0.0.1:{DEFAULT_PORTS['statements']}/v1/contracts/{DEMO_CONTRACT}/statements/{period}"
        deadline, statement = time.monotonic() + 120, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=2)
                if response.status_code == 200:
                    statement = response.json()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        if statement is None:
            process.kill()
            pytest.fail(f"no demo statement; slapay run said:\n{process.communicate()[0]}")
        assert statement["status"] == "provisional"
        assert [line["kind"] for line in statement["lines"]][:2] == ["base_fee", "sla_credit"]
        for port in DEFAULT_PORTS.values():
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "stopping..." in output
    assert "stopping the others" not in output  # a clean stop does not read as a crash
    assert (tmp_path / ".slapay" / "bus.db").exists()
