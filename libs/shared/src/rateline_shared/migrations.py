"""Alembic helpers: every service keeps its migrations in ``<package>/migrations`` and runs them
through these two functions, so ``env.py`` is three lines in each service.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def alembic_config(migrations_dir: Path, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.set_main_option("version_locations", str(migrations_dir / "versions"))
    return cfg


def upgrade(migrations_dir: Path, database_url: str, revision: str = "head") -> None:
    """Run the migrations (blocking; call it from a thread inside an event loop)."""
    command.upgrade(alembic_config(migrations_dir, database_url), revision)


async def upgrade_async(migrations_dir: Path, database_url: str) -> None:
    await asyncio.to_thread(upgrade, migrations_dir, database_url)


def run_env(target_metadata: MetaData) -> None:
    """The body of a service's ``migrations/env.py``."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection, target_metadata=target_metadata, compare_type=True
        )
        with context.begin_transaction():
            # Two replicas migrating at once (Kubernetes init containers): the second waits
            # here, then finds the database at head. PostgreSQL DDL is transactional.
            connection.execute(text("SELECT pg_advisory_xact_lock(7243519870)"))
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(main())


def autogenerate(migrations_dir: Path, database_url: str, message: str, rev_id: str) -> None:
    """Write a new revision from the difference between the models and a migrated database."""
    cfg = alembic_config(migrations_dir, database_url)
    command.upgrade(cfg, "head")
    command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
