from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from rateline_shared.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Environment variables are prefixed ``RATELINE_GATEWAY_`` (e.g. ``..._DATABASE_URL``).

    Each upstream service's base URL is ``RATELINE_GATEWAY_<SERVICE>_URL``
    (``..._CUSTOMER_URL``, ``..._CATALOG_URL``, ...).
    """

    model_config = SettingsConfigDict(env_prefix="RATELINE_GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    port: int = 8100

    # Access tokens.
    token_ttl: int = Field(default=3600, ge=60, le=86400, description="Access-token lifetime (s)")
    signing_key_bits: int = Field(default=2048, ge=2048)

    # Upstream services (base URLs, no trailing /v1).
    customer_url: str = "http://127.0.0.1:8101"
    catalog_url: str = "http://127.0.0.1:8102"
    usage_url: str = "http://127.0.0.1:8103"
    invoicing_url: str = "http://127.0.0.1:8104"
    payment_url: str = "http://127.0.0.1:8105"
    webhooks_url: str = "http://127.0.0.1:8106"

    # The one pooled HTTP client used to reach them.
    upstream_connect_timeout: float = 3.0
    upstream_read_timeout: float = 60.0
    upstream_write_timeout: float = 60.0
    upstream_pool_timeout: float = 5.0
    upstream_max_connections: int = 200
    upstream_max_keepalive: int = 50
    upstream_keepalive_expiry: float = 30.0

    # The merged OpenAPI document.
    openapi_cache_ttl: float = Field(default=30.0, ge=0)
    openapi_fetch_timeout: float = 3.0

    # When true, /readyz also requires every upstream's /healthz to answer 200. Off by default:
    # one service being down should not take the whole public entry point out of rotation.
    ready_requires_upstreams: bool = False

    @model_validator(mode="after")
    def _check_production(self) -> GatewaySettings:
        """Overrides the services' check: the gateway verifies tokens with its own keys, so its
        ``jwks_url`` is never used and may keep its default in production."""
        return self

    def upstream_urls(self) -> dict[str, str]:
        """Service name -> base URL, in routing-table order."""
        return {
            "customer": self.customer_url,
            "catalog": self.catalog_url,
            "usage": self.usage_url,
            "invoicing": self.invoicing_url,
            "payment": self.payment_url,
            "webhooks": self.webhooks_url,
        }
