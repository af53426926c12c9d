"""JetStream streams: one per owning service, plus the dead-letter stream.

Every service provisions the streams it publishes to *and* those it consumes from at
start-up, with identical configuration, so start-up order does not matter.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

SERVICES = ("customer", "catalog", "usage", "invoicing", "payment", "webhooks")
DEAD_LETTER_STREAM = "DEADLETTER"
DEAD_LETTER_PREFIX = "deadletter"
DUPLICATE_WINDOW_SECONDS = 120.0


def stream_name(service: str) -> str:
    return service.upper()


def stream_config(service: str) -> StreamConfig:
    return StreamConfig(
        name=stream_name(service),
        subjects=[f"{service}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=30 * 24 * 3600.0,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


def dead_letter_config() -> StreamConfig:
    return StreamConfig(
        name=DEAD_LETTER_STREAM,
        subjects=[f"{DEAD_LETTER_PREFIX}.>"],
        storage=StorageType.FILE,
        max_age=90 * 24 * 3600.0,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        # 10058: a stream with that name exists with a different config; keep it and update.
        if exc.err_code == 10058:
            await js.update_stream(config)
        else:
            raise


async def ensure_streams(js: JetStreamContext, services: set[str]) -> None:
    for service in sorted(services):
        await ensure_stream(js, stream_config(service))
    await ensure_stream(js, dead_letter_config())
