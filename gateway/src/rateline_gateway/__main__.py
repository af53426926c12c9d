"""``python -m rateline_gateway [serve|migrate|create-client ...]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from rateline_gateway.app import MIGRATIONS, SERVICE
from rateline_gateway.cli import CliError, create_client
from rateline_gateway.domain.scopes import ScopeError
from rateline_gateway.settings import GatewaySettings
from rateline_shared.logs import configure_logging
from rateline_shared.service import service_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rateline-gateway")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP server (default)")
    commands.add_parser("migrate", help="apply the database migrations")
    create = commands.add_parser(
        "create-client",
        help="create an OAuth client, or update the secret and scopes of an existing one",
    )
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", required=True, help='e.g. "admin" or "customers:* usage:read"')
    create.add_argument("--name", required=True)
    create.add_argument("--client-id", default=None, help="default: a generated id")
    create.add_argument("--client-secret", default=None, help="default: a generated secret")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = GatewaySettings()
    if args.command == "create-client":
        configure_logging(SERVICE, settings.log_level, settings.log_json)
        try:
            result = asyncio.run(
                create_client(
                    settings,
                    tenant=args.tenant,
                    scopes=args.scopes,
                    name=args.name,
                    client_id=args.client_id,
                    client_secret=args.client_secret,
                )
            )
        except (CliError, ScopeError) as err:
            parser.exit(2, f"rateline-gateway create-client: error: {err}\n")
        sys.stdout.write(json.dumps(result) + "\n")
        return
    service_main(
        service=SERVICE,
        app_factory="rateline_gateway.app:create_app",
        settings=settings,
        migrations_dir=MIGRATIONS,
        argv=[args.command or "serve"],
    )


if __name__ == "__main__":
    main()
