"""The ``whago`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from app.settings import SettingsError, get_settings


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _migrate(_: argparse.Namespace) -> int:
    from app.core.db import migrate

    settings = get_settings()
    print(asyncio.run(migrate(settings)))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    get_settings()  # fail fast on bad settings, before forking workers
    uvicorn.run(
        "app.factory:asgi_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        log_level="info",
        access_log=args.access_log,
    )
    return 0


def _dev(args: argparse.Namespace) -> int:
    import uvicorn

    from app.core.db import migrate

    settings = get_settings()
    asyncio.run(migrate(settings))
    print(f"WHAGO dev: http://{args.host}:{args.port} (API docs at /schema)", flush=True)
    uvicorn.run("app.dev:dev_app", factory=True, host=args.host, port=args.port, log_level="info")
    return 0


def _create_admin(args: argparse.Namespace) -> int:
    from app.users.admin_cli import create_admin

    print(asyncio.run(create_admin(get_settings(), args.email, args.password)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whago", description="WHAGO: WhatsApp sessions on WAHA, per tenant.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations (idempotent)").set_defaults(func=_migrate)

    serve = sub.add_parser("serve", help="run the API with uvicorn")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--access-log", action=argparse.BooleanOptionalAction, default=False,
        help="log every request (off by default: /metrics has request counts and latencies)",
    )
    serve.set_defaults(func=_serve)

    dev = sub.add_parser("dev", help="everything a developer needs, in one process, on local defaults")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(func=_dev)

    admin = sub.add_parser("create-admin", help="create an admin, or promote an existing user")
    admin.add_argument("email")
    admin.add_argument("--password", required=True)
    admin.set_defaults(func=_create_admin)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"whago: configuration error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
