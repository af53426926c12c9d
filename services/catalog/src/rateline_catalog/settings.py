from pydantic_settings import SettingsConfigDict

from rateline_shared.settings import ServiceSettings


class CatalogSettings(ServiceSettings):
    """Environment variables are prefixed ``RATELINE_CATALOG_`` (e.g. ``..._DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="RATELINE_CATALOG_", extra="ignore")

    service_name: str = "catalog"
    port: int = 8102
