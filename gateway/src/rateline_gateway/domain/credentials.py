"""Client identifiers and secrets: generation, hashing (scrypt, per-client salt) and checks.

The stored form is ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, so the cost can be raised
later without breaking existing secrets. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from functools import cache

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SALT_BYTES = 16
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._~-]{3,64}$")


def new_client_id() -> str:
    return "rl_" + secrets.token_hex(10)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def valid_client_id(client_id: str) -> bool:
    """Unreserved URL characters only, so the id survives HTTP Basic and form encoding."""
    return bool(CLIENT_ID_RE.fullmatch(client_id))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_secret(secret: str, *, salt: bytes | None = None, n: int = SCRYPT_N) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_DKLEN,
        maxmem=128 * n * SCRYPT_R * 2,
    )
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, encoded: str) -> bool:
    """True when ``secret`` matches ``encoded``; False for a mismatch or a malformed hash."""
    try:
        scheme, n, r, p, salt_b64, hash_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
        n_, r_, p_ = int(n), int(r), int(p)
        actual = hashlib.scrypt(
            secret.encode(), salt=salt, n=n_, r=r_, p=p_, dklen=len(expected),
            maxmem=128 * n_ * r_ * 2,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@cache
def dummy_hash() -> str:
    """Checked against when the client id is unknown, so timing does not reveal which ids exist."""
    return hash_secret(secrets.token_urlsafe(16))
