"""Request-scoped auth: the caller's id from a token, the user row, the admin guard, and the auth service.

Dependency chains: every provider here depends on ``container`` (app level, app.container), and a
service provider on an authenticated route depends on the caller's id too. A route's dependencies
then form one chain (container → user_id → service) that Litestar resolves in sequence: two
dependencies of the same depth would be resolved in a task group, per request.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.params import QueryParameter

from app.auth.service import AuthService
from app.container import Container
from app.core import context
from app.core.errors import Forbidden, NotAuthenticated
from app.core.security import ACCESS, STREAM
from app.users.schemas import UserOut
from app.users.service import require_user_row, to_user_out


def _bearer(connection: ASGIConnection) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Missing bearer token.")
    return token.strip()


def _caller(connection: ASGIConnection, container: Container) -> UUID:
    user_id = container.tokens.verify(_bearer(connection), ACCESS).user_id
    container.activity.touch(user_id)
    context.set_actor(user_id)  # audit entries and logs of this request name the caller
    return user_id


def provide_user_id(request: ASGIConnection, container: NamedDependency[Container]) -> UUID:
    # Token-only: the hot paths (chip listing) need the caller's id, not a database round trip.
    return _caller(request, container)


async def provide_current_user(container: NamedDependency[Container], user_id: NamedDependency[UUID]) -> UserOut:
    """The caller as the API shows them (with their plan's limit)."""
    return to_user_out(await require_user_row(user_id), container.settings.plan_limits)


def provide_stream_user_id(
    container: NamedDependency[Container], token: Annotated[str | None, QueryParameter()] = None
) -> UUID:
    """The caller of the live-event stream: EventSource cannot send headers, so a short-lived
    stream token comes in the query string."""
    if not token:
        raise NotAuthenticated("Missing stream token (?token=…, from POST /api/v1/auth/stream-token).")
    return container.tokens.verify(token, STREAM).user_id


def provide_auth_service(container: NamedDependency[Container]) -> AuthService:
    return AuthService(container)


def provide_authenticated_auth_service(
    container: NamedDependency[Container], user_id: NamedDependency[UUID]
) -> AuthService:
    # after user_id: one chain, and no service is built for a request that fails authentication
    return AuthService(container)


async def requires_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    # Guards run before dependencies: read the container from the app state.
    user = await require_user_row(_caller(connection, connection.app.state.container))
    context.set_actor(user.id, user.email)
    if not user.is_admin:
        raise Forbidden("Administrators only.")
