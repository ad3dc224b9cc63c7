"""`slapay serve ingest` in its own process refuses an oversized remote-write body (250,000
samples) with 413, quickly, and its peak RSS stays under 300 MB (issue 19, case 6)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from shared.auth import issue_token
from tests import infra
from tests.service.test_ingest_bounds import REMOTE_WRITE, oversized_remote_write
from tests.system import SECRET, eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LIMIT_MB = 300


def peak_rss_mb(pid: int) -> float:
    """The process' peak resident set size (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


async def _ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(f"{url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def served_ingest(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`slapay serve ingest` on the embedded bus in `data_dir`."""
    env = {
        **os.environ,
        "SLAPAY_DATA_DIR": str(data_dir),
        "SLAPAY_AUTH_SECRET": SECRET,
        "SLAPAY_DEMO": "0",
    }
    command = [sys.executable, "-m", "services.cli", "serve", "ingest", "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
async def test_ingest_refuses_an_oversized_remote_write_in_bounded_memory(tmp_path: Path) -> None:
    body = oversized_remote_write()
    port = infra.free_port()
    url = f"http://127.0.0.1:{port}"
    headers = {
        "Authorization": f"Bearer {issue_token(SECRET, 'agent', ['acme-2026'])}",
        **REMOTE_WRITE,
    }
    with served_ingest(tmp_path, port) as process:
        async with httpx.AsyncClient(timeout=60) as client:
            await eventually(lambda: _ready(client, url), lambda ok: ok)
            before = peak_rss_mb(process.pid)
            started = time.monotonic()
            response = await client.post(
                f"{url}/v1/prometheus/write", content=body, headers=headers
            )
            took = time.monotonic() - started
            health = await client.get(f"{url}/healthz")
        after = peak_rss_mb(process.pid)
    print(f"peak RSS {before:.0f} MB before, {after:.0f} MB after; refused in {took:.2f} s")
    assert response.status_code == 413, response.text
    assert health.status_code == 200
    assert after < LIMIT_MB
    assert took < 5.0
