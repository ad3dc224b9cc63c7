"""Secrets: distributed mode refuses to start without them (a clear message, exit code 2);
nothing ships with a default secret; embedded mode makes its own, one per data dir."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
KAFKA = "kafka://127.0.0.1:1"  # never reached: the check comes first


def serve(service: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLAPAY_")}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "serve", service, "--port", "1"],
        env={**clean, "SLAPAY_DATA_DIR": str(tmp_path), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("service", "env", "message"),
    [
        ("ledger", {}, "SLAPAY_AUTH_SECRET is required in distributed mode"),
        ("ingest", {"SLAPAY_AUTH_SECRET": "short"}, "SLAPAY_AUTH_SECRET must be at least 32"),
        ("reviews", {"SLAPAY_AUTH_SECRET": "s" * 40}, "SLAPAY_REVIEWS_PEPPER is required"),
        (
            "reviews",
            {"SLAPAY_AUTH_SECRET": "s" * 40, "SLAPAY_REVIEWS_PEPPER": "p" * 31},
            "SLAPAY_REVIEWS_PEPPER must be at least 32",
        ),
    ],
)
def test_distributed_mode_refuses_to_start_without_its_secrets(
    tmp_path: Path, service: str, env: dict[str, str], message: str
) -> None:
    finished = serve(service, tmp_path, SLAPAY_BUS=KAFKA, **env)
    assert finished.returncode == 2, finished.stderr
    assert message in finished.stderr
    assert "Traceback" not in finished.stderr
    assert not (tmp_path / "auth_secret").exists()


def test_no_secret_has_a_default_and_embedded_mode_makes_its_own(tmp_path: Path) -> None:
    for name in ("auth_secret", "reviews_pepper"):
        assert Settings.model_fields[name].default is None
    first = Settings(data_dir=tmp_path / "a", auth_secret=None, reviews_pepper=None)
    second = Settings(data_dir=tmp_path / "b", auth_secret=None, reviews_pepper=None)
    assert first.secret() != second.secret()
    assert first.reviews_pepper_value() != second.reviews_pepper_value()
    assert len(first.secret()) >= 32 and first.secret() == first.secret()
    for name in ("auth_secret", "reviews_pepper"):
        mode = stat.S_IMODE((tmp_path / "a" / name).stat().st_mode)
        assert mode == 0o600, oct(mode)
