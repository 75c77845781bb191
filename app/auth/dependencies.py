"""Request-scoped auth: the caller's token (checked for revocation), the user row, the admin guard,
the event-stream lease, and the auth service.

Dependency chains: every provider here depends on ``container`` (app level, app.container), and a
service provider on an authenticated route depends on the caller's id too. A route's dependencies
then form one chain (container → user_id → service) that Litestar resolves in sequence: two
dependencies of the same depth would be resolved in a task group, per request.
"""

from __future__ import annotations

import uuid
from typing import Annotated
from uuid import UUID

from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import QueryParameter

from app.auth.service import AuthService, ensure_not_revoked
from app.container import Container
from app.core import context
from app.core.clientip import client_ip
from app.core.db import DB_UNAVAILABLE_ERRORS
from app.core.errors import Forbidden, NotAuthenticated, RateLimited, WhagoError
from app.core.security import ACCESS, STREAM, TokenClaims
from app.events.streams import StreamLease
from app.users.schemas import UserOut
from app.users.service import require_user_row, to_user_out, token_states

_STREAM_SLOTS = "event-streams"
# an open stream refreshes its slot well within this; a crashed process's slots expire after it
_STREAM_SLOT_TTL_SECONDS = 60.0


def _bearer(connection: ASGIConnection) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Missing bearer token.")
    return token.strip()


async def _caller(connection: ASGIConnection, container: Container) -> TokenClaims:
    claims = container.tokens.verify(_bearer(connection), ACCESS)
    await ensure_not_revoked(container, claims)
    container.activity.touch(claims.user_id)
    context.set_actor(claims.user_id)  # audit entries and logs of this request name the caller
    return claims


async def provide_user_id(request: ASGIConnection, container: NamedDependency[Container]) -> UUID:
    # The token and, at most every few seconds per token, its revocation state: the hot paths
    # (chip listing) need the caller's id, not a user row.
    return (await _caller(request, container)).user_id


async def provide_token_claims(request: ASGIConnection, container: NamedDependency[Container]) -> TokenClaims:
    """The caller's token itself (logout revokes exactly this one)."""
    return await _caller(request, container)


def provide_client_ip(request: ASGIConnection, container: NamedDependency[Container]) -> str:
    return client_ip(request, container.settings.trusted_proxies)


async def provide_current_user(container: NamedDependency[Container], user_id: NamedDependency[UUID]) -> UserOut:
    """The caller as the API shows them (with their plan's limit)."""
    return to_user_out(await require_user_row(user_id), container.settings.plan_limits)


async def provide_stream_lease(
    container: NamedDependency[Container], token: Annotated[str | None, QueryParameter()] = None
) -> StreamLease:
    """The caller of the live-event stream: EventSource cannot send headers, so a short-lived,
    single-use stream token comes in the query string; the user holds a bounded number of streams."""
    if not token:
        raise NotAuthenticated("Missing stream token (?token=…, from POST /api/v1/auth/stream-token).")
    claims = container.tokens.verify(token, STREAM)
    await ensure_not_revoked(container, claims)
    if not await container.attempts.claim_once(
        "stream-token", str(claims.token_id), ttl_seconds=container.tokens.stream_ttl + 5
    ):
        raise NotAuthenticated("Stream token already used; request a new one.")
    user = str(claims.user_id)
    slot = uuid.uuid4().hex
    limit = container.settings.max_streams_per_user
    if not await container.attempts.acquire_slot(
        _STREAM_SLOTS, user, slot, limit=limit, ttl_seconds=_STREAM_SLOT_TTL_SECONDS
    ):
        raise RateLimited(f"At most {limit} open event streams per user; close one first.", retry_after=5)

    async def still_valid() -> bool:
        try:
            # read with every other open stream's token of this process, in one statement
            state = await container.stream_tokens.state(claims, token_states)
            if state is None:
                await ensure_not_revoked(container, claims)  # opened during that read: on its own
            else:
                container.tokens.check(claims, state)
        except NotAuthenticated:
            return False
        except WhagoError:
            return True  # database briefly down: keep streaming, check again later
        except DB_UNAVAILABLE_ERRORS:
            # the same, unwrapped: the one read now serves every stream, which must not all end at once
            return True
        return True

    async def refresh() -> None:
        await container.attempts.refresh_slot(_STREAM_SLOTS, user, slot, ttl_seconds=_STREAM_SLOT_TTL_SECONDS)

    async def release() -> None:
        container.stream_tokens.unwatch(claims)
        await container.attempts.release_slot(_STREAM_SLOTS, user, slot)

    return StreamLease(
        user_id=claims.user_id,
        still_valid=still_valid,
        refresh=refresh,
        release=release,
        refresh_seconds=_STREAM_SLOT_TTL_SECONDS / 3,  # two refreshes may fail before the slot lapses
    )


def provide_auth_service(container: NamedDependency[Container], client_ip: NamedDependency[str]) -> AuthService:
    # after client_ip: one chain (container → client_ip → auth_service)
    return AuthService(container)


def provide_authenticated_auth_service(
    container: NamedDependency[Container], user_id: NamedDependency[UUID]
) -> AuthService:
    # after user_id: one chain, and no service is built for a request that fails authentication
    return AuthService(container)


def provide_token_auth_service(
    container: NamedDependency[Container], token_claims: NamedDependency[TokenClaims]
) -> AuthService:
    # after token_claims: one chain (container → token_claims → auth_service)
    return AuthService(container)


async def requires_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    # Guards run before dependencies: read the container from the app state.
    user = await require_user_row((await _caller(connection, connection.app.state.container)).user_id)
    context.set_actor(user.id, user.email)
    if not user.is_admin:
        raise Forbidden("Administrators only.")
