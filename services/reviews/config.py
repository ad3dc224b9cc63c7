"""The reviews service's own configuration, resolved once from `Settings` at bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from services.reviews.crypto import key_encryption_key
from services.reviews.ratelimit import Limit
from services.reviews.summary import BurstRule
from shared.settings import ConfigurationError, Settings


@dataclass(frozen=True)
class ReviewsConfig:
    pepper: bytes
    kek: bytes
    limits: tuple[Limit, ...]
    burst: BurstRule
    import_max_rows: int
    import_max_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> ReviewsConfig:
        """Raises `ConfigurationError` without a pepper in distributed mode, or for limits
        that make no sense."""
        pepper = settings.reviews_pepper_value()
        numbers = {
            "SLAPAY_REVIEWS_RATE_PER_MINUTE": settings.reviews_rate_per_minute,
            "SLAPAY_REVIEWS_RATE_PER_DAY": settings.reviews_rate_per_day,
            "SLAPAY_REVIEWS_BURST_MIN_REVIEWS": settings.reviews_burst_min_reviews,
            "SLAPAY_REVIEWS_IMPORT_MAX_ROWS": settings.reviews_import_max_rows,
        }
        for name, value in numbers.items():
            if value < 1:
                raise ConfigurationError(f"{name} must be at least 1")
        if not 0 < settings.reviews_burst_share <= 1:
            raise ConfigurationError("SLAPAY_REVIEWS_BURST_SHARE must be in (0, 1]")
        return cls(
            pepper=pepper,
            kek=key_encryption_key(pepper),
            limits=(
                Limit(60, settings.reviews_rate_per_minute),
                Limit(86_400, settings.reviews_rate_per_day),
            ),
            burst=BurstRule(settings.reviews_burst_min_reviews, settings.reviews_burst_share),
            import_max_rows=settings.reviews_import_max_rows,
        )

    def __repr__(self) -> str:
        return "ReviewsConfig(<secrets hidden>)"


def get_config(request: Request) -> ReviewsConfig:
    config: ReviewsConfig = request.app.state.reviews_config
    return config
