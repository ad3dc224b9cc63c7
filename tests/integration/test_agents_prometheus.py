"""Debian's Prometheus and blackbox exporter, configured as docs/agents.md says, remote-write
their probes of a live service into slapay, down to the provisional statement."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.auth import issue_token
from shared.core.decimals import shown
from shared.events import TOPIC_MEASUREMENTS, Envelope
from tests import infra
from tests.integration.test_agents_common import (
    CONTRACT,
    events,
    kpi_line,
    slapay_with_http_ingest,
)
from tests.system import SECRET, eventually

pytestmark = pytest.mark.integration
DOCS = Path(__file__).resolve().parents[2] / "docs" / "agents.md"
HINT = "run .ci/install-agents.sh (apt-get install prometheus prometheus-blackbox-exporter)"


def binaries() -> tuple[str, str]:
    found = shutil.which("prometheus"), shutil.which("prometheus-blackbox-exporter")
    if not all(found):
        infra.unavailable("Prometheus and its blackbox exporter", HINT)
    prometheus, blackbox = found
    assert prometheus and blackbox
    return prometheus, blackbox


def docs_block(file: str) -> str:
    """The YAML block docs/agents.md gives for `file`."""
    match = re.search(rf"`{re.escape(file)}`[^\n]*\n+```yaml\n(.*?)```", DOCS.read_text(), re.S)
    assert match, f"docs/agents.md has no YAML block for {file}"
    return match.group(1)


def substituted(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"docs/agents.md changed: {old!r} is no longer in its config"
        text = text.replace(old, new)
    return text


@contextlib.contextmanager
def running(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def write_configs(tmp_path: Path, ingest_url: str, blackbox_port: int) -> tuple[Path, Path]:
    """The docs' three files, pointed at this test's ports, token file and 1 s intervals."""
    token = tmp_path / "slapay-agent.token"
    token.write_text(issue_token(SECRET, "agent", [CONTRACT]) + "\n")
    token.chmod(0o600)
    rules, config, modules = (tmp_path / n for n in ("rules.yml", "prom.yml", "bb.yml"))
    modules.write_text(docs_block("/etc/prometheus/blackbox.yml"))
    rules.write_text(docs_block("/etc/prometheus/slapay.rules.yml"))
    replacements = {
        "scrape_interval: 15s": "scrape_interval: 1s",
        "evaluation_interval: 15s": "evaluation_interval: 1s",
        "/etc/prometheus/slapay.rules.yml": str(rules),
        "/etc/prometheus/slapay-agent.token": str(token),
        "https://shop.example.com/healthz": f"{ingest_url}/healthz",
        r"https://shop\.example\.com/.*": re.escape(ingest_url) + "/.*",
        "127.0.0.1:9115": f"127.0.0.1:{blackbox_port}",
        "http://127.0.0.1:8001": ingest_url,
    }
    config.write_text(substituted(docs_block("/etc/prometheus/prometheus.yml"), replacements))
    return modules, config


async def test_blackbox_probes_reach_the_statement_through_remote_write(tmp_path: Path) -> None:
    prometheus, blackbox = binaries()
    async with slapay_with_http_ingest(tmp_path) as (system, ingest_url):
        blackbox_port, prometheus_port = infra.free_port(), infra.free_port()
        modules, config = write_configs(tmp_path, ingest_url, blackbox_port)
        with (
            running(
                [
                    blackbox,
                    f"--config.file={modules}",
                    f"--web.listen-address=127.0.0.1:{blackbox_port}",
                ],
                tmp_path / "blackbox.log",
            ) as exporter,
            running(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                tmp_path / "prometheus.log",
            ) as server,
        ):

            async def arrived(kpi: str) -> int:
                for process, log in ((exporter, "blackbox.log"), (server, "prometheus.log")):
                    if process.poll() is not None:
                        tail = (tmp_path / log).read_text(errors="replace")[-3000:]
                        raise AssertionError(f"{process.args[0]} exited:\n{tail}")
                return events(await kpi_line(system, kpi))

            await eventually(lambda: arrived("availability"), lambda n: n >= 3, timeout_s=30)
            await eventually(lambda: arrived("latency_ms"), lambda n: n >= 2, timeout_s=10)

        # Prometheus has stopped: the statement ends up holding exactly what it sent.
        async def settled() -> tuple[list[Envelope], dict[str, Any], dict[str, Any]]:
            bus = system.apps["ingest"].state.runtime.bus
            sent = [Envelope.from_json(r.value) for r in await bus.read_all(TOPIC_MEASUREMENTS)]
            lines = [await kpi_line(system, kpi) for kpi in ("availability", "latency_ms")]
            return sent, *(line or {} for line in lines)

        recorded, availability, latency = await eventually(
            settled,
            lambda s: events(s[1]) + events(s[2]) == len(s[0]),
            timeout_s=10,
        )

    values: dict[str, list[float]] = {"availability": [], "latency_ms": []}
    for event in recorded:
        data = event.payload().model_dump()
        values[data["kpi"]].append(data["value"])
        assert event.contract_id == CONTRACT
        assert data["labels"]["instance"] == f"{ingest_url}/healthz"
        assert data["labels"]["job"] == "blackbox"
    assert set(values["availability"]) <= {0.0, 1.0} and 1.0 in values["availability"]
    mean = sum(values["availability"]) / len(values["availability"])
    assert availability["derivation"]["value"] == pytest.approx(mean)
    assert all(0 < v < 5000 for v in values["latency_ms"])  # ms, by the recording rule
    # p95: one of them, shown to 15 significant digits
    assert latency["derivation"]["value"] in {shown(v) for v in values["latency_ms"]}
    assert len({e.event_id for e in recorded}) == len(recorded)
