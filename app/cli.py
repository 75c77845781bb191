"""The ``whago`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from app.settings import Settings, SettingsError, get_settings


def _setup_logging(settings: Settings) -> None:
    from app.core import logs

    logs.configure(settings)


def _migrate(_: argparse.Namespace) -> int:
    from app.core.db import migrate

    settings = get_settings()
    print(asyncio.run(migrate(settings)))
    return 0


def _warn_local_scheduler(command: str) -> None:
    if get_settings().scheduler == "local":
        logging.getLogger("whago").warning(
            "WHAGO_SCHEDULER=local keeps tenant emulators inside one process: it suits `whago dev`, "
            "not a separate `whago %s`; use nomad or static",
            command,
        )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    get_settings()  # fail fast on bad settings, before forking workers
    _warn_local_scheduler("serve")
    if args.host in ("0.0.0.0", "::"):  # noqa: S104 - saying so is the point
        logging.getLogger("whago").info(
            "listening on every interface (%s:%s); use --host 127.0.0.1 for this machine only", args.host, args.port
        )
    uvicorn.run(
        "app.factory:asgi_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        log_level="info",
        log_config=None,  # uvicorn's records go through WHAGO's handler (JSON or text, redacted)
        access_log=args.access_log,
        # event streams end at once on a stop (app.factory); other requests get this long
        timeout_graceful_shutdown=get_settings().worker_shutdown_grace_seconds,
    )
    return 0


def _dev(args: argparse.Namespace) -> int:
    import os

    import msgspec
    import uvicorn

    from app.core.db import migrate
    from app.dev import dev_app

    settings = get_settings()
    if "WHAGO_PUBLIC_URL" not in os.environ:
        # WAHA (the local emulators) must call back this very process
        settings = msgspec.structs.replace(settings, public_url=f"http://{args.host}:{args.port}")
    asyncio.run(migrate(settings))
    print(
        f"WHAGO dev: http://{args.host}:{args.port} (API docs at /schema, scheduler: {settings.scheduler})", flush=True
    )
    uvicorn.run(
        dev_app(settings),
        host=args.host,
        port=args.port,
        log_level="info",
        log_config=None,
        timeout_graceful_shutdown=settings.worker_shutdown_grace_seconds,
    )
    return 0


def _worker(_: argparse.Namespace) -> int:
    from app.worker.runner import run_worker

    _warn_local_scheduler("worker")
    asyncio.run(run_worker(get_settings()))
    return 0


def _create_admin(args: argparse.Namespace) -> int:
    from app.users.admin_cli import create_admin

    print(asyncio.run(create_admin(get_settings(), args.email, args.password)))
    return 0


def _emulator(args: argparse.Namespace) -> int:
    from app.waha.emulator import serve_emulator

    api_key = args.api_key or get_settings().waha_api_key
    serve_emulator(
        host=args.host,
        port=args.port,
        api_key=api_key,
        boot_delay_seconds=args.boot_delay,
        qr_first_seconds=args.qr_first,
        qr_next_seconds=args.qr_next,
        qr_max=args.qr_max,
        state_dir=args.state_dir,
    )
    return 0


def _nomad_render(args: argparse.Namespace) -> int:
    import uuid

    from app.scheduler.nomad_job import render

    settings = get_settings()
    if args.plan not in settings.plan_limits:
        print(f"whago: unknown plan {args.plan!r}; one of {', '.join(settings.plan_limits)}", file=sys.stderr)
        return 2
    try:
        user_id = str(uuid.UUID(args.user_id))
    except ValueError:
        print(f"whago: --user-id must be a UUID, got {args.user_id!r}", file=sys.stderr)
        return 2
    print(render(user_id, args.plan, settings))
    return 0


def _rotate_encryption_key(_: argparse.Namespace) -> int:
    from app.proxies.rotation import reencrypt_proxy_secrets

    count = asyncio.run(reencrypt_proxy_secrets(get_settings()))
    print(f"re-encrypted {count} proxy password(s) with the newest WHAGO_ENCRYPTION_KEY")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whago", description="WHAGO: WhatsApp sessions on WAHA, per tenant.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations (idempotent)").set_defaults(func=_migrate)

    serve = sub.add_parser("serve", help="run the API with uvicorn")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server in a container listens on all interfaces
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="log every request (off by default: /metrics has request counts and latencies)",
    )
    serve.set_defaults(func=_serve)

    sub.add_parser("worker", help="run a SAQ worker (provisioning, teardown, reconcile, ...)").set_defaults(
        func=_worker
    )

    dev = sub.add_parser("dev", help="everything a developer needs, in one process, on local defaults")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.set_defaults(func=_dev)

    emulator = sub.add_parser("emulator", help="run the WAHA emulator (for demos, the SPA and tests)")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=3000)
    emulator.add_argument("--api-key", default="", help="X-Api-Key to require (default: WHAGO_WAHA_API_KEY)")
    emulator.add_argument("--boot-delay", type=float, default=1.0, help="seconds in STARTING")
    emulator.add_argument("--qr-first", type=float, default=60.0, help="lifetime of the first QR (s)")
    emulator.add_argument("--qr-next", type=float, default=20.0, help="lifetime of each later QR (s)")
    emulator.add_argument("--qr-max", type=int, default=6, help="QR codes before the session FAILS")
    emulator.add_argument(
        "--state-dir",
        default=None,
        help="keep sessions (config, link) in JSON files here, so a restart restarts them (default: memory only)",
    )
    emulator.set_defaults(func=_emulator)

    nomad = sub.add_parser("nomad", help="Nomad helpers").add_subparsers(dest="nomad_command", required=True)
    render = nomad.add_parser("render", help="print the job registration body for a tenant (no database)")
    render.add_argument("--user-id", required=True)
    render.add_argument("--plan", required=True)
    render.set_defaults(func=_nomad_render)

    sub.add_parser(
        "rotate-encryption-key",
        help="re-encrypt proxy passwords with the first key of WHAGO_ENCRYPTION_KEY (then drop the old key)",
    ).set_defaults(func=_rotate_encryption_key)

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
    _setup_logging(settings)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
