"""Autogenerate a migration for one service against a throw-away embedded PostgreSQL.

    uv run python tools/makemigration.py customer "add contacts" 0002
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

from rateline_shared.engines import EmbeddedPostgres
from rateline_shared.migrations import autogenerate


def main() -> None:
    service, message, rev_id = sys.argv[1], sys.argv[2], sys.argv[3]
    module = importlib.import_module(f"rateline_{service}.app")
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "data").start()
        try:
            pg.ensure_database("mig")
            autogenerate(module.MIGRATIONS, pg.url("mig"), message, rev_id)
        finally:
            pg.stop()


if __name__ == "__main__":
    main()
