"""Token-signing keys: RSA key pairs kept in the gateway's database, published as a JWKS.

On first start no key exists; :func:`ensure_signing_keys` creates one under a transaction-level
advisory lock, so two replicas starting together end up with the same single key. The newest
active key signs; every active key is published (room for rotation: add a key, keep the old
one active until its tokens expire, then deactivate it).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rateline_gateway import repository as repo
from rateline_shared.db import advisory_xact_lock, unit_of_work

ALGORITHM = "RS256"
LOCK_KEY = "rateline-gateway:signing-keys"


def generate_private_key_pem(bits: int = 2048) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def thumbprint_kid(pem: str) -> str:
    """The RFC 7638 thumbprint of the key: a stable, content-derived ``kid``."""
    return str(RSAKey.import_key(pem).thumbprint())


def load_key(kid: str, pem: str) -> RSAKey:
    return RSAKey.import_key(pem, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM})


@dataclass(frozen=True)
class SigningKeys:
    """The key that signs (newest active) and all keys that verify (every active one)."""

    current: RSAKey
    active: tuple[RSAKey, ...]

    @property
    def kid(self) -> str:
        return str(self.current.kid)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.active]}

    def jwks_json(self) -> str:
        return json.dumps(self.jwks())

    def key_set(self) -> KeySet:
        return KeySet(list(self.active))

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self.kid}
        return str(jwt.encode(header, claims, self.current))


async def ensure_signing_keys(
    sessions: async_sessionmaker[AsyncSession], bits: int = 2048
) -> SigningKeys:
    """Load the active keys, creating the first one if there is none (race-safe)."""
    async with unit_of_work(sessions) as session:
        rows = await repo.active_signing_keys(session)
        if not rows:
            await advisory_xact_lock(session, LOCK_KEY)
            rows = await repo.active_signing_keys(session)  # another replica may have won
            if not rows:
                pem = await asyncio.to_thread(generate_private_key_pem, bits)
                await repo.insert_signing_key(session, thumbprint_kid(pem), pem)
                rows = await repo.active_signing_keys(session)
    keys = tuple(load_key(row["kid"], row["private_key_pem"]) for row in rows)
    return SigningKeys(current=keys[0], active=keys)
