from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from rateline_shared.settings import ServiceSettings

# The Standard Webhooks retry schedule: the delays before the 2nd, 3rd, ... attempt
# (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h): eight attempts over about 27 hours.
STANDARD_RETRY_SCHEDULE = [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]


class WebhooksSettings(ServiceSettings):
    """Environment variables are prefixed ``RATELINE_WEBHOOKS_`` (e.g. ``..._DATABASE_URL``).

    ``RATELINE_WEBHOOKS_RETRY_SCHEDULE_SECONDS`` takes a JSON list, e.g. ``[5, 300, 1800]``.
    """

    model_config = SettingsConfigDict(env_prefix="RATELINE_WEBHOOKS_", extra="ignore")

    service_name: str = "webhooks"
    port: int = 8106
    delivery_timeout: float = Field(default=10.0, gt=0, description="seconds per HTTP attempt")
    retry_schedule_seconds: list[float] = Field(
        default_factory=lambda: list(STANDARD_RETRY_SCHEDULE),
        description="delay before each retry; the delivery fails after len + 1 attempts",
    )
    delivery_poll_interval: float = Field(default=1.0, gt=0)
    delivery_concurrency: int = Field(default=20, ge=1, description="requests in flight per process")
    delivery_lease_seconds: float = Field(
        default=60.0, description="a 'sending' delivery whose lease expired is due again"
    )
    delivery_response_body_limit: int = Field(default=1024, ge=0, description="bytes kept per attempt")
    delivery_proxy: str | None = Field(default=None, description="egress proxy for deliveries")

    @model_validator(mode="after")
    def _check_delivery(self) -> "WebhooksSettings":
        if any(delay < 0 for delay in self.retry_schedule_seconds):
            raise ValueError("retry_schedule_seconds must not contain negative delays")
        if self.delivery_lease_seconds <= self.delivery_timeout:
            raise ValueError("delivery_lease_seconds must be longer than delivery_timeout")
        return self
