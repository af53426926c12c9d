from pydantic_settings import SettingsConfigDict

from rateline_shared.settings import ServiceSettings


class PaymentSettings(ServiceSettings):
    """Environment variables are prefixed ``RATELINE_PAYMENT_`` (e.g. ``..._DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="RATELINE_PAYMENT_", extra="ignore")

    service_name: str = "payment"
    port: int = 8105
