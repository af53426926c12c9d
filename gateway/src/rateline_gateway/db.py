"""The gateway's tables (its own database): OAuth clients and token-signing keys."""

from sqlalchemy import Boolean, Column, DateTime, String, Table, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY

from rateline_shared.db import new_metadata

metadata = new_metadata()

oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    # "scrypt$n$r$p$<salt b64>$<hash b64>"; the secret itself is never stored.
    Column("secret_hash", String(255), nullable=False),
    Column("name", String(200), nullable=False),
    Column("tenant", String(64), nullable=False, index=True),
    Column("scopes", ARRAY(String(64)), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),  # RFC 7638 JWK thumbprint of the public key
    Column("private_key_pem", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("active", Boolean, nullable=False, server_default=text("true")),
)
