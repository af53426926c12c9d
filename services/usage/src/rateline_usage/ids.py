"""Time-ordered record ids (UUIDv7, RFC 9562 with a 12-bit counter in ``rand_a``).

Records of one batch share ``created_at``; ids that sort in generation order keep lists in
the order the records were sent (pagination orders by ``created_at, id``).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_MAX_COUNTER = 0xFFF


def new_ids(n: int) -> list[str]:
    """``n`` new ids, strictly increasing (as strings too) within this process."""
    global _last_ms, _counter
    out: list[str] = []
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms, _counter = now_ms, 0
        for _ in range(n):
            _counter += 1
            if _counter > _MAX_COUNTER:  # borrow the next millisecond (RFC 9562, 6.2 method 1)
                _last_ms, _counter = _last_ms + 1, 0
            value = (
                (_last_ms & 0xFFFF_FFFF_FFFF) << 80
                | 0x7 << 76
                | _counter << 64
                | 0b10 << 62
                | secrets.randbits(62)
            )
            out.append(str(uuid.UUID(int=value)))
    return out


def new_id() -> str:
    return new_ids(1)[0]
