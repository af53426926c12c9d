from pydantic import Field
from pydantic_settings import SettingsConfigDict

from rateline_shared.settings import ServiceSettings


class UsageSettings(ServiceSettings):
    """Environment variables are prefixed ``RATELINE_USAGE_`` (e.g. ``..._DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="RATELINE_USAGE_", extra="ignore")

    service_name: str = "usage"
    port: int = 8103
    # Region used to read MSISDNs that switches send in national format ("0171 1234567").
    default_country: str = "DE"
    # Re-rating jobs (``rerating.py``): records per chunk (one transaction each), how often an
    # idle worker looks for open jobs, how many times a chunk may fail for a non-transient
    # reason before its job fails, and whether this replica runs the worker at all.
    rerating_chunk_size: int = Field(default=500, ge=1, le=5_000)
    rerating_poll_interval: float = Field(default=1.0, gt=0)
    rerating_max_attempts: int = Field(default=3, ge=1)
    rerating_worker: bool = True
