"""The operator's commands (``whago reconcile --once``, ``whago instances list``, ``whago users
set-plan``, ``whago proxies import``): the same services as the API, so rules and audit entries
are the same. Audit entries name the actor ``cli:<os user>``.
"""

from __future__ import annotations

import contextlib
import csv
import getpass
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from app.admin.schemas import AdminUserUpdate
from app.admin.service import AdminService
from app.container import Container
from app.core import context, db
from app.core.errors import WhagoError
from app.core.pagination import MAX_LIMIT
from app.core.validation import humanize
from app.proxies.schemas import ProxyCreate
from app.proxies.service import ProxyService
from app.reconciler.service import Reconciler
from app.settings import Settings
from app.users.service import find_user_by_email


class OperatorError(Exception):
    """A refused command: the message is for the operator; the exit status is 1."""


@contextlib.asynccontextmanager
async def _platform(settings: Settings) -> AsyncIterator[Container]:
    await db.migrate(settings)
    await db.start_pool(settings)
    container = Container.build(settings)
    try:
        with context.work(actor_email=f"cli:{_os_user()}"):
            yield container
    finally:
        await container.aclose()
        await db.close_pool()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        return "unknown"


async def reconcile_once(settings: Settings) -> dict[str, Any]:
    async with _platform(settings) as container:
        report = await Reconciler(container).run()
    return report.as_dict()


def format_report(report: dict[str, Any]) -> str:
    if not report.get("ran", True):
        return "reconcile: another reconciler holds the lock; nothing done"
    lines = [
        f"reconcile: {report['tenants']} tenant(s), {report['instances']} instance(s), "
        f"{report['sessions']} session(s) in {report['seconds']:.2f}s"
    ]
    drift = report.get("drift") or {}
    lines.append("drift: none" if not drift else "drift: " + ", ".join(f"{k}={v}" for k, v in sorted(drift.items())))
    lines += [f"error: {e}" for e in report.get("errors") or []]
    return "\n".join(lines)


async def list_instances(settings: Settings) -> list[dict[str, Any]]:
    async with _platform(settings) as container:
        page = await AdminService(container).list_instances(MAX_LIMIT, 0)
    return [msgspec.to_builtins(item) for item in page.items]


def format_instances(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no instances"
    header = ("USER", "STATUS", "SESSIONS", "LAST SEEN", "BASE URL", "NOMAD UI")
    table = [header] + [
        (
            r["user_id"],
            r["status"],
            str(r["sessions"]),
            r["last_seen_at"] or "-",
            r["base_url"] or "-",
            r.get("nomad_ui_url") or "-",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table)


async def set_plan(settings: Settings, email: str, plan: str) -> str:
    async with _platform(settings) as container:
        user = await find_user_by_email(email)
        if user is None:
            raise OperatorError(f"no user with email {email.strip().lower()}")
        try:
            updated = await AdminService(container).update_user(user.id, AdminUserUpdate(plan=plan))
        except WhagoError as exc:
            raise OperatorError(exc.detail) from None
    return f"{updated.email}: plan {user.plan} -> {updated.plan} (max {updated.max_chips} chips)"


async def set_disabled(settings: Settings, email: str, disabled: bool) -> str:
    """Disable (or enable) an account: its tokens are revoked and its open streams close."""
    async with _platform(settings) as container:
        user = await find_user_by_email(email)
        if user is None:
            raise OperatorError(f"no user with email {email.strip().lower()}")
        try:
            updated = await AdminService(container).update_user(user.id, AdminUserUpdate(disabled=disabled))
        except WhagoError as exc:
            raise OperatorError(exc.detail) from None
    return f"{updated.email}: {'disabled (tokens revoked)' if disabled else 'enabled'}"


def _proxy_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        data = json.loads(text)
        rows = data if isinstance(data, list) else [data]
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    # empty CSV cells mean "not given"
    return [{k.strip(): v for k, v in row.items() if k and v not in ("", None)} for row in rows]


async def import_proxies(settings: Settings, path: Path) -> list[str]:
    """Validate every row first (nothing is added when one is bad), then add them all.

    Passwords are encrypted by the proxy service and never printed; an invalid row is reported
    by its number and field only.
    """
    try:
        rows = _proxy_rows(path)
    except (OSError, ValueError) as exc:
        raise OperatorError(f"{path}: cannot read ({type(exc).__name__})") from None
    proxies: list[ProxyCreate] = []
    problems: list[str] = []
    for number, row in enumerate(rows, start=1):
        try:
            proxies.append(msgspec.convert(row, ProxyCreate, strict=False))
        except msgspec.ValidationError as exc:
            field, words = humanize(str(exc))
            problems.append(f"row {number}: {field} {words}")
    if problems:
        raise OperatorError("nothing imported:\n" + "\n".join(problems))
    added: list[str] = []
    async with _platform(settings) as container:
        service = ProxyService(container)
        for proxy in proxies:
            out = await service.create(proxy)
            added.append(
                f"{out.id} {out.scheme}://{out.host}:{out.port} password={'yes' if out.has_password else 'no'}"
            )
    return added
