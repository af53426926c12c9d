"""The event backbone: CloudEvents envelope, transactional outbox, idempotent consumers."""

from rateline_shared.events.envelope import CloudEvent, new_event
from rateline_shared.events.outbox import publish_in_transaction

__all__ = ["CloudEvent", "new_event", "publish_in_transaction"]
