"""Audit entries: written by any feature through ``record``, read by operators, pruned by a job.

This package imports only the kernel (``app.core``, ``app.settings``): every feature may call it,
including those the container itself imports (users), without an import cycle. Its admin route
lives in ``app.admin`` for the same reason (the guard is in ``app.auth``, which audits logins).

``record`` needs no container: it reads the actor and the request id from the current unit of
work (``app.core.context``) unless given, so a service adds one line after the change it audits::

    await record(None, "proxy.update", ("proxy", proxy_id), before=old, after=new)

Inside ``db.transaction()`` the entry commits (or rolls back) with the change. ``before``/``after``
are small dicts of what changed; keys that name secrets are dropped here as a last defence, but
callers pass non-secret snapshots in the first place (``has_password``, never the password).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

import msgspec

from app.audit import queries
from app.audit.schemas import AuditEntryOut, AuditPage
from app.core import context
from app.settings import Settings

logger = logging.getLogger("whago.audit")

# actions written today (the filter `action=` takes any string; these are the ones to expect)
ACTIONS = (
    "user.create",
    "user.update",
    "user.create_admin",
    "auth.login_locked",
    "auth.password_change",
    "auth.tokens_revoked",
    "instance.restart",
    "instance.remove",
    "proxy.create",
    "proxy.update",
    "proxy.delete",
    "proxy.import",
)

_SECRET_KEY = re.compile(r"password|secret|token|api_?key|hmac|hash|credential", re.IGNORECASE)
_HAS_FLAG = re.compile(r"^has_")

Target = tuple[str, object | None]


class Actor(msgspec.Struct, frozen=True):
    id: UUID | None
    email: str | None = None


def scrub(snapshot: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The snapshot without any key that names a secret. Flags stay: ``has_password`` style
    names and any true/false value (``tokens_revoked``), which cannot hold a secret."""
    if snapshot is None:
        return None
    clean: dict[str, Any] = {}
    for key, value in snapshot.items():
        if _SECRET_KEY.search(key) and not _HAS_FLAG.match(key) and not isinstance(value, bool):
            continue
        clean[key] = scrub(value) if isinstance(value, Mapping) else value
    return clean


def _json(snapshot: Mapping[str, Any] | None) -> str | None:
    clean = scrub(snapshot)
    return None if clean is None else msgspec.json.encode(clean).decode()


async def record(
    actor: Actor | UUID | None,
    action: str,
    target: Target,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    request_id: str | None = None,
) -> None:
    """Write one audit entry. ``actor`` None: the caller of the current request (or the system,
    e.g. a CLI command, when there is none); ``request_id`` None: the current one."""
    work = context.current()
    if actor is None:
        # the caller of this request, or the command's operator (``cli:<os user>``), or the system
        actor = Actor(work.actor_id, work.actor_email) if work else Actor(None)
    elif isinstance(actor, UUID):
        actor = Actor(actor)
    target_type, target_id = target
    await queries.insert(
        actor_id=actor.id,
        actor_email=actor.email,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        before=_json(before),
        after=_json(after),
        request_id=request_id or (work.request_id if work else None),
    )
    logger.info("audit %s %s %s", action, target_type, target_id)


def _decode(text: str | None) -> dict[str, Any] | None:
    return None if text is None else msgspec.json.decode(text)


class AuditService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def page(
        self, *, limit: int, before: UUID | None, actor_id: UUID | None, action: str | None, target_id: str | None
    ) -> AuditPage:
        rows = await queries.page(limit=limit, before=before, actor_id=actor_id, action=action, target_id=target_id)
        items = [
            AuditEntryOut(
                id=r.id,
                at=r.at,
                actor_id=r.actor_id,
                actor_email=r.actor_email,
                action=r.action,
                target_type=r.target_type,
                target_id=r.target_id,
                before=_decode(r.before),
                after=_decode(r.after),
                request_id=r.request_id,
            )
            for r in rows
        ]
        return AuditPage(items=items, next_before=items[-1].id if len(items) == limit else None)

    async def prune(self) -> int:
        """Drop entries older than WHAGO_AUDIT_RETENTION_DAYS (the daily job)."""
        removed = await queries.prune(timedelta(days=self.settings.audit_retention_days))
        if removed:
            logger.info("pruned %s audit entries", removed)
        return removed
