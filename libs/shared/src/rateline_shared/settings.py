"""Settings base shared by every service (pydantic-settings, one env prefix per service)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Common settings. A service subclasses it and sets its own ``env_prefix``.

    Every value can be set by environment variable, e.g. ``RATELINE_CUSTOMER_DATABASE_URL``.
    A few are shared by all services under the ``RATELINE_`` prefix (see ``shared_env``).
    """

    model_config = SettingsConfigDict(env_prefix="RATELINE_", extra="ignore")

    service_name: str = "service"
    environment: str = Field(default="development", description="development | production")
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/rateline"
    database_pool_size: int = 10
    nats_url: str = "nats://127.0.0.1:4222"
    # Where to find the gateway's signing keys. ``jwks_json`` (an inline JWKS document) wins
    # over ``jwks_url``; tests use it, deployments use the URL.
    jwks_url: str = "http://127.0.0.1:8100/.well-known/jwks.json"
    jwks_json: str | None = None
    jwt_issuer: str = "rateline-gateway"
    jwt_audience: str = "rateline"
    log_level: str = "INFO"
    log_json: bool = True
    # Event backbone tuning.
    outbox_poll_interval: float = 0.05
    outbox_batch_size: int = 500
    consumer_batch_size: int = 200
    consumer_max_deliver: int = 5
    consumer_ack_wait: float = 30.0

    @model_validator(mode="after")
    def _check_production(self) -> ServiceSettings:
        if self.environment == "production" and "127.0.0.1" in self.jwks_url and not self.jwks_json:
            raise ValueError("jwks_url must point at the gateway in production")
        return self
