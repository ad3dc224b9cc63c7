"""`slapay run` from a fresh data dir: four healthy services, a final demo statement, and the
README's audit commands checking it."""

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

from services.demo import DEMO_CONTRACT, DEMO_REVIEWS, previous_month
from shared.settings import DEFAULT_PORTS

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def readme_audit_commands() -> str:
    """The shell block of the README's auditing section, `.venv/bin/slapay` being this
    checkout's CLI."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Auditing", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the README's auditing section has no sh block"
    return block.group(1).replace(".venv/bin/slapay", f"{sys.executable} -m services.cli")


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
    env["PYTHONPATH"] = str(ROOT)
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
                if response.status_code == 200 and response.json()["status"] == "final":
                    statement = response.json()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        if statement is None:
            process.kill()
            pytest.fail(f"no final demo statement; slapay run said:\n{process.communicate()[0]}")
        assert statement["signature"]
        assert [line["kind"] for line in statement["lines"]][:2] == ["base_fee", "sla_credit"]
        (reviewed,) = [line for line in statement["lines"] if line["kind"] == "review_adjustment"]
        assert reviewed["derivation"]["reviews"] == len(DEMO_REVIEWS)
        assert reviewed["amount"] == "-62.50"  # mean 2.75 against neutral 3: a 0.625% penalty
        for port in DEFAULT_PORTS.values():
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        audit = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", readme_audit_commands()],
            cwd=tmp_path,
            env={**env, "TOKEN": token},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert audit.returncode == 0, audit.stdout + audit.stderr
        verified = [line for line in audit.stdout.splitlines() if line.startswith("OK: ")]
        assert [line.split(" — ")[0] for line in verified[:2]] == [
            f"OK: {DEMO_CONTRACT} {period}"
        ] * 2
        assert '"verified":true' in audit.stdout
        assert re.search(rf"OK: {DEMO_CONTRACT} {period} total \S+ signed by key", audit.stdout)
        assert re.search(rf"^OK +{DEMO_CONTRACT}: ", audit.stdout, re.M)  # the replay
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "stopping..." in output
    assert "stopping the others" not in output  # a clean stop does not read as a crash
    assert (tmp_path / ".slapay" / "bus.db").exists()
