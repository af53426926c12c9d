"""Rules for payment methods (pure)."""

from __future__ import annotations


def becomes_default(requested: bool | None, account_has_default: bool) -> bool:
    """Whether a new method becomes the account's default.

    ``true`` makes it the default (the previous default steps down), ``false`` never does, and
    leaving it out makes the account's first method its default, so automatic collection has
    something to charge.
    """
    if requested is None:
        return not account_has_default
    return requested
