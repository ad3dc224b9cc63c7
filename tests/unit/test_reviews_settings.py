"""The reviews pepper: generated in embedded mode, required in distributed mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.reviews.bootstrap import bootstrap
from shared.settings import ConfigurationError, Settings


def test_embedded_mode_generates_and_keeps_a_pepper(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    pepper = settings.reviews_pepper_value()
    assert len(pepper) >= 32
    assert Settings(data_dir=tmp_path).reviews_pepper_value() == pepper
    assert (tmp_path / "reviews_pepper").stat().st_mode & 0o777 == 0o600


def test_distributed_mode_refuses_to_start_without_a_pepper(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, bus="kafka://127.0.0.1:1", auth_secret="s" * 40)
    with pytest.raises(ConfigurationError, match="SLAPAY_REVIEWS_PEPPER"):
        bootstrap(settings)
    configured = Settings(**{**settings.model_dump(), "reviews_pepper": "p" * 40})
    assert configured.reviews_pepper_value() == b"p" * 40


def test_a_short_pepper_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLAPAY_REVIEWS_PEPPER", "short")
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        Settings().reviews_pepper_value()


@pytest.mark.parametrize(
    "wrong",
    [{"reviews_rate_per_minute": 0}, {"reviews_burst_share": 0}, {"reviews_burst_share": 1.5}],
)
def test_nonsense_limits_are_refused(tmp_path: Path, wrong: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        bootstrap(Settings(data_dir=tmp_path, **wrong))
