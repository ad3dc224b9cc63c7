"""Settings from the environment (`SLAPAY_*`), one object per process."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MAX_CLOCK_SKEW_S = 300.0
"""How far ahead of our clock a client's timestamp may lie (measurements, reviews)."""

SERVICES = ("ingest", "reviews", "ledger", "statements")
DEFAULT_PORTS = {"ingest": 8001, "reviews": 8002, "ledger": 8003, "statements": 8004}
MIN_SECRET_BYTES = 32


class ConfigurationError(RuntimeError):
    """The environment does not describe a runnable system."""


class Settings(BaseSettings):
    """`SLAPAY_BUS`: `sqlite` (embedded log under the data dir), `kafka://host:port[,...]`,
    or an SQLAlchemy URL of a database that holds the SQL log.
    `SLAPAY_DATABASE_URL`: the service's database; default SQLite under the data dir."""

    model_config = SettingsConfigDict(env_prefix="SLAPAY_", extra="ignore")

    bus: str = "sqlite"
    database_url: str | None = None
    data_dir: Path = Path(".slapay")
    auth_secret: SecretStr | None = None
    demo: bool = True
    host: str = "127.0.0.1"
    kafka_partitions: int = 12  # for topics slapay creates, as deploy/k8s creates them
    consumer_session_timeout_ms: int = 10_000
    log_poll_interval_s: float = 0.05
    publish_timeout_s: float = 10.0
    provisional_debounce_s: float = 1.0
    autoclose_interval_s: float = 60.0
    reviews_pepper: SecretStr | None = None
    reviews_rate_per_minute: int = 30
    reviews_rate_per_day: int = 1000
    reviews_burst_min_reviews: int = 5
    reviews_burst_share: float = 0.5
    reviews_import_max_rows: int = 10_000
    max_body_bytes: int = 1024 * 1024
    max_bulk_body_bytes: int = 16 * 1024 * 1024
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S  # how far ahead a timestamp may lie
    idempotency_lease_s: float = 30.0  # a key claimed this long with no response is free again
    idempotency_retention_hours: float = 24.0  # how long a kept response answers a repeat
    max_decoded_bytes: int = 16 * 1024 * 1024  # an agent protocol's body, uncompressed
    max_record_bytes: int = 512 * 1024  # one event on the bus (Kafka's default cap is 1 MiB)
    ingest_dedupe_days: float = 30.0  # how long ingest remembers what it published
    public_url: str | None = None  # e.g. https://statements.example.com, for printed links
    signing_keys: Path | None = None  # PEM bundle of the statement-signing keys (shared/signing.py)
    webhook_allow_private: bool | None = (
        None  # webhooks to private/loopback hosts; default: embedded
    )
    webhook_timeout_s: float = 15.0  # one delivery attempt, connect to last byte
    webhook_retry_base_s: float = 5.0  # the first retry's delay; each next one doubles
    webhook_retry_max_s: float = 12 * 3600.0  # the longest delay between two attempts
    webhook_retry_window_s: float = 3 * 86400.0  # how long a delivery is retried before it fails
    webhook_poll_interval_s: float = 0.5  # how often the sender looks for due deliveries
    verify_concurrency: int = Field(3, ge=1)  # verifications a statements replica runs at once

    @property
    def embedded(self) -> bool:
        return not self.bus.startswith("kafka://")

    @property
    def webhooks_may_reach_private(self) -> bool:
        """`SLAPAY_WEBHOOK_ALLOW_PRIVATE`, by default on in embedded mode only (one machine:
        the subscriber is likely local) and off in distributed mode (SSRF)."""
        if self.webhook_allow_private is None:
            return self.embedded
        return self.webhook_allow_private

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / (service + '.db')}"

    def bus_log_url(self) -> str:
        if self.bus == "sqlite":
            return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'bus.db'}"
        return self.bus

    def kafka_bootstrap(self) -> str:
        return self.bus.removeprefix("kafka://")

    def secret(self) -> str:
        """The JWT secret: from the environment, else (embedded only) kept in the data dir."""
        if self.auth_secret is not None:
            value = self.auth_secret.get_secret_value()
            if len(value.encode()) < MIN_SECRET_BYTES:
                raise ConfigurationError(
                    f"SLAPAY_AUTH_SECRET must be at least {MIN_SECRET_BYTES} bytes"
                )
            return value
        if not self.embedded:
            raise ConfigurationError("SLAPAY_AUTH_SECRET is required in distributed mode")
        return self._generated_secret("auth_secret")

    def reviews_pepper_value(self) -> bytes:
        """The reviews service's HMAC pepper: from the environment, else (embedded only) kept
        in the data dir like the auth secret. Losing it changes every pseudonym."""
        if self.reviews_pepper is not None:
            value = self.reviews_pepper.get_secret_value().encode()
            if len(value) < MIN_SECRET_BYTES:
                raise ConfigurationError(
                    f"SLAPAY_REVIEWS_PEPPER must be at least {MIN_SECRET_BYTES} bytes"
                )
            return value
        if not self.embedded:
            raise ConfigurationError("SLAPAY_REVIEWS_PEPPER is required in distributed mode")
        return self._generated_secret("reviews_pepper").encode()

    def _generated_secret(self, name: str) -> str:
        """A random secret file `name` in the data dir, created once, atomically, mode 0600."""
        path = self.data_dir / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            staged = path.with_name(f".{name}.{secrets.token_hex(8)}")
            descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            try:
                os.link(staged, path)  # fails if another process won the race
            except FileExistsError:
                pass
            finally:
                staged.unlink()
        return path.read_text().strip()
