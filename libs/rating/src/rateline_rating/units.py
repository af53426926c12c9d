"""Units: what each service measures, and how priced units convert to measured ones.

Voice is measured in seconds, SMS/MMS in messages, data in bytes. Data units are 1024-based
(1 KB = 1,024 bytes, 1 MB = 1,048,576 bytes, 1 GB = 1,073,741,824 bytes), as mobile operators
and RADIUS accounting tools count them.
"""

from __future__ import annotations

from decimal import Decimal

MEASURED_UNITS: dict[str, str] = {"voice": "second", "sms": "message", "mms": "message", "data": "byte"}

# Measured units in one priced unit, per priced unit name.
MEASURED_PER_UNIT: dict[str, int] = {
    "second": 1,
    "minute": 60,
    "message": 1,
    "byte": 1,
    "KB": 1024,
    "MB": 1024**2,
    "GB": 1024**3,
}

# The priced units each service may use.
PRICED_UNITS: dict[str, frozenset[str]] = {
    "voice": frozenset({"minute", "second"}),
    "sms": frozenset({"message"}),
    "mms": frozenset({"message"}),
    "data": frozenset({"KB", "MB", "GB"}),
}


def to_measured(quantity: Decimal, unit: str) -> Decimal:
    """``quantity`` of a priced ``unit`` in the service's measured unit (exact)."""
    return quantity * MEASURED_PER_UNIT[unit]

