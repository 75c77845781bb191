"""Who and what a unit of work belongs to: the request id and the acting user.

One ``WorkContext`` per HTTP request (set by ``app.core.request_id``), per SAQ job (restored from
the job's ``meta`` by the worker) or per CLI command. It is a mutable object held in a context
variable so that what a guard or a dependency learns (the caller) is visible to the handler and
the services it calls, whichever task resolved it. Logs (``app.core.logs``), outgoing calls
(WAHA, Nomad) and audit entries (``app.audit``) read it; nothing else should.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID

REQUEST_ID_HEADER = "X-Request-ID"


@dataclass(slots=True)
class WorkContext:
    request_id: str
    actor_id: UUID | None = None
    actor_email: str | None = None


_current: ContextVar[WorkContext | None] = ContextVar("whago_work_context", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def current() -> WorkContext | None:
    return _current.get()


def current_request_id() -> str | None:
    ctx = _current.get()
    return ctx.request_id if ctx else None


@contextlib.contextmanager
def work(
    request_id: str | None = None, *, actor_id: UUID | None = None, actor_email: str | None = None
) -> Iterator[WorkContext]:
    """Run a block as one unit of work (a job, a CLI command); a new request id unless given."""
    ctx = WorkContext(request_id or new_request_id(), actor_id, actor_email)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def set_actor(actor_id: UUID, email: str | None = None) -> None:
    """Record the authenticated caller on the current unit of work (no-op outside one)."""
    ctx = _current.get()
    if ctx is not None:
        ctx.actor_id = actor_id
        if email is not None:
            ctx.actor_email = email


def outgoing_headers() -> dict[str, str]:
    """Headers that carry the request id to WAHA and Nomad."""
    request_id = current_request_id()
    return {REQUEST_ID_HEADER: request_id} if request_id else {}
