from pydantic import Field
from pydantic_settings import SettingsConfigDict

from rateline_shared.settings import ServiceSettings


class InvoicingSettings(ServiceSettings):
    """Environment variables are prefixed ``RATELINE_INVOICING_`` (e.g. ``..._DATABASE_URL``)."""

    model_config = SettingsConfigDict(env_prefix="RATELINE_INVOICING_", extra="ignore")

    service_name: str = "invoicing"
    port: int = 8104
    payment_terms_days: int = Field(default=14, ge=0, description="due date = finalize date + N")
    # Bill-run worker: disable it on API-only replicas.
    bill_run_worker: bool = True
    bill_run_poll_interval: float = Field(default=0.5, gt=0)
    bill_run_max_attempts: int = Field(
        default=3, ge=1, description="unexpected failures of one account before it is reported"
    )
