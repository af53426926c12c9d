from pydantic_settings import SettingsConfigDict

from rateline_shared.settings import ServiceSettings


class CustomerSettings(ServiceSettings):
    """Environment variables are prefixed ``RATELINE_CUSTOMER_`` (e.g. ``..._DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="RATELINE_CUSTOMER_", extra="ignore")

    service_name: str = "customer"
    port: int = 8101
    default_country: str = "DE"
