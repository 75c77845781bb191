"""The ``whago`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

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
        # WHAGO_TRUSTED_PROXIES decides whose X-Forwarded-For names the client (app.core.clientip);
        # uvicorn's own rewrite would trust any local peer's header and bypass per-IP limits
        proxy_headers=False,
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
        proxy_headers=False,  # X-Forwarded-For is trusted only from WHAGO_TRUSTED_PROXIES
        timeout_graceful_shutdown=settings.worker_shutdown_grace_seconds,
    )
    return 0


def _worker(_: argparse.Namespace) -> int:
    from app.worker.runner import run_worker

    _warn_local_scheduler("worker")
    asyncio.run(run_worker(get_settings()))
    return 0


def _as_operator() -> contextlib.AbstractContextManager:
    """One-shot commands run as one unit of work whose audit entries name ``cli:<os user>``."""
    import getpass

    from app.core import context

    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        user = "unknown"
    return context.work(actor_email=f"cli:{user}")


def _create_admin(args: argparse.Namespace) -> int:
    from app.users.admin_cli import create_admin

    with _as_operator():
        print(
            asyncio.run(create_admin(get_settings(), args.email, args.password, promote_existing=args.promote_existing))
        )
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    from app import operator_cli

    report = asyncio.run(operator_cli.reconcile_once(get_settings()))
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else operator_cli.format_report(report))
    return 1 if report.get("errors") else 0


def _instances_list(args: argparse.Namespace) -> int:
    from app import operator_cli

    rows = asyncio.run(operator_cli.list_instances(get_settings()))
    print(json.dumps(rows, indent=2, default=str) if args.json else operator_cli.format_instances(rows))
    return 0


def _users_set_plan(args: argparse.Namespace) -> int:
    from app import operator_cli

    try:
        print(asyncio.run(operator_cli.set_plan(get_settings(), args.email, args.plan)))
    except operator_cli.OperatorError as exc:
        print(f"whago: {exc}", file=sys.stderr)
        return 1
    return 0


def _users_disable(args: argparse.Namespace) -> int:
    from app import operator_cli

    try:
        print(asyncio.run(operator_cli.set_disabled(get_settings(), args.email, not args.enable)))
    except operator_cli.OperatorError as exc:
        print(f"whago: {exc}", file=sys.stderr)
        return 1
    return 0


def _proxies_import(args: argparse.Namespace) -> int:
    from app import operator_cli

    try:
        added = asyncio.run(operator_cli.import_proxies(get_settings(), Path(args.file)))
    except operator_cli.OperatorError as exc:
        print(f"whago: {exc}", file=sys.stderr)
        return 1
    print("\n".join([*added, f"imported {len(added)} proxy(ies)"]))
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
        ack_delay_seconds=args.ack_delay_ms / 1000,
        state_dir=args.state_dir,
        realistic=args.realistic,
        zombie=args.zombie != "off",
        zombie_survives=args.zombie == "survive",
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


def _version() -> str:
    try:
        return version("whago")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Descriptions as written, and every option's default in its help."""


def _command(sub: Any, name: str, help_: str, description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_, description=description or help_, formatter_class=_Help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whago",
        description="WHAGO: WhatsApp sessions (chips) on WAHA, per tenant. Settings come from WHAGO_* "
        "environment variables (see README).",
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"whago {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command(sub, "migrate", "apply database migrations (idempotent; creates the database if missing)").set_defaults(
        func=_migrate
    )

    serve = _command(
        sub,
        "serve",
        "run the API with uvicorn",
        "Run the HTTP API. It listens on every interface by default (a server in a container); "
        "pass --host 127.0.0.1 to stay on this machine.",
    )
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on")  # noqa: S104 - see the description
    serve.add_argument("--port", type=int, default=8000, help="TCP port")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="log every request (/metrics has request counts and latencies)",
    )
    serve.set_defaults(func=_serve)

    _command(sub, "worker", "run a SAQ worker: provisioning, teardown, reconcile, proxy checks, pruning").set_defaults(
        func=_worker
    )

    dev = _command(
        sub,
        "dev",
        "everything a developer needs in one process: API, worker and WAHA emulators",
        "Migrate, then run the API, a worker and per-tenant WAHA emulators (the local scheduler) in one "
        "process. Generated secrets are kept in WHAGO_DEV_STATE_DIR/dev-secrets.json.",
    )
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on")
    dev.add_argument("--port", type=int, default=8000, help="TCP port")
    dev.set_defaults(func=_dev)

    emulator = _command(sub, "emulator", "run the WAHA emulator alone (demos, the SPA, tests)")
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on")
    emulator.add_argument("--port", type=int, default=3000, help="TCP port")
    emulator.add_argument("--api-key", default="", help="X-Api-Key to require (empty: WHAGO_WAHA_API_KEY)")
    emulator.add_argument("--boot-delay", type=float, default=1.0, help="seconds a session stays STARTING")
    emulator.add_argument("--qr-first", type=float, default=60.0, help="lifetime of the first QR (s)")
    emulator.add_argument("--qr-next", type=float, default=20.0, help="lifetime of each later QR (s)")
    emulator.add_argument("--qr-max", type=int, default=6, help="QR codes before the session FAILS")
    emulator.add_argument(
        "--ack-delay-ms",
        type=int,
        default=300,
        help="delay between a sent message's automatic acks SERVER -> DEVICE -> READ (0: no automatic acks)",
    )
    emulator.add_argument(
        "--state-dir",
        default=None,
        help="keep sessions (config, link) in JSON files here, so a restart restarts them (none: memory only)",
    )
    emulator.add_argument(
        "--realistic",
        action="store_true",
        help="WAHA's own waits: stop/restart/PUT take 3 s, logout 4 s, wrong-status answers 5 s",
    )
    emulator.add_argument(
        "--zombie",
        choices=("off", "once", "survive"),
        default="off",
        help="fault: every session turns into a zombie (WORKING, no events, check-exists hangs) once "
        "WORKING; `once`: a restart cures it, `survive`: restarts do not (liveness demos)",
    )
    emulator.set_defaults(func=_emulator)

    nomad = _command(sub, "nomad", "Nomad helpers").add_subparsers(
        dest="nomad_command", required=True, metavar="COMMAND"
    )
    render = _command(nomad, "render", "print a tenant's Nomad job registration body (no database needed)")
    render.add_argument("--user-id", required=True, help="the tenant's user id (UUID)")
    render.add_argument("--plan", required=True, help="the tenant's plan (sizes the task)")
    render.set_defaults(func=_nomad_render)

    _command(
        sub,
        "rotate-encryption-key",
        "re-encrypt proxy passwords with the first key of WHAGO_ENCRYPTION_KEY (then drop the old key)",
    ).set_defaults(func=_rotate_encryption_key)

    admin = _command(
        sub,
        "create-admin",
        "create an admin account; an existing non-admin account only with --promote-existing; audited",
    )
    admin.add_argument("email", help="the operator's email")
    admin.add_argument("--password", required=True, help="8 to 128 characters")
    admin.add_argument(
        "--promote-existing",
        action="store_true",
        help="the email already has a (non-admin) account that is yours: make it an admin with this "
        "password and revoke its earlier tokens",
    )
    admin.set_defaults(func=_create_admin)

    reconcile = _command(
        sub,
        "reconcile",
        "compare the database with the scheduler and WAHA, fix the drift and print what was fixed",
        "Run one reconcile pass now (the worker runs one every WHAGO_RECONCILE_INTERVAL_SECONDS) and print "
        "the drift report. Exit status 1 when the pass met errors.",
    )
    reconcile.add_argument("--once", action="store_true", default=True, help="one pass, then exit (the only mode)")
    reconcile.add_argument("--json", action="store_true", default=False, help="print the report as JSON")
    reconcile.set_defaults(func=_reconcile)

    instances = _command(sub, "instances", "tenants' WAHA instances").add_subparsers(
        dest="instances_command", required=True, metavar="COMMAND"
    )
    listing = _command(instances, "list", "every tenant's instance as last observed (with the Nomad UI link)")
    listing.add_argument("--json", action="store_true", default=False, help="print JSON instead of a table")
    listing.set_defaults(func=_instances_list)

    users = _command(sub, "users", "manage users").add_subparsers(
        dest="users_command", required=True, metavar="COMMAND"
    )
    set_plan = _command(users, "set-plan", "change a user's plan (audited, as cli:<os user>)")
    set_plan.add_argument("email", help="the user's email")
    set_plan.add_argument("plan", help="a plan name from WHAGO_PLANS")
    set_plan.set_defaults(func=_users_set_plan)
    disable = _command(
        users, "disable", "disable an account: its tokens are revoked, its event streams close (audited)"
    )
    disable.add_argument("email", help="the user's email")
    disable.add_argument("--enable", action="store_true", help="enable the account again instead")
    disable.set_defaults(func=_users_disable)

    proxies = _command(sub, "proxies", "manage the proxy pool").add_subparsers(
        dest="proxies_command", required=True, metavar="COMMAND"
    )
    importing = _command(
        proxies,
        "import",
        "add proxies from a CSV or JSON file (all or none; passwords encrypted, never printed)",
        "Add proxies from FILE: CSV with a header row, or a JSON list of objects, with the fields of "
        "POST /api/v1/admin/proxies (scheme, host, port, username, password, country, max_chips). Every row "
        "is checked first; one bad row imports nothing.",
    )
    importing.add_argument("file", help="CSV or JSON file")
    importing.set_defaults(func=_proxies_import)
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
