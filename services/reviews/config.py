"""The reviews service's own configuration, resolved once from `Settings` at bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from services.reviews.crypto import key_encryption_key
from services.reviews.ratelimit import Limit
from services.reviews.summary import BurstRule
from shared.settings import Settings


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
        """Raises `ConfigurationError` without a pepper in distributed mode."""
        pepper = settings.reviews_pepper_value()
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
