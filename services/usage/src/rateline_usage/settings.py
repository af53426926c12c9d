from pydantic_settings import SettingsConfigDict

from rateline_shared.settings import ServiceSettings


class UsageSettings(ServiceSettings):
    """Environment variables are prefixed ``RATELINE_USAGE_`` (e.g. ``..._DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="RATELINE_USAGE_", extra="ignore")

    service_name: str = "usage"
    port: int = 8103
    # Region used to read MSISDNs that switches send in national format ("0171 1234567").
    default_country: str = "DE"
