"""Request-scoped auth: the caller's id from the bearer token, the user row, and the admin guard."""

from __future__ import annotations

from uuid import UUID

from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler

from app.core.errors import Forbidden, NotAuthenticated
from app.core.security import ACCESS
from app.core.services import Services
from app.users.service import UserRow, require_user_row


def provide_services(state: State) -> Services:
    return state.services


def _bearer(connection: ASGIConnection) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("Missing bearer token.")
    return token.strip()


def provide_user_id(request: ASGIConnection, services: NamedDependency[Services]) -> UUID:
    # Token-only: the hot paths (chip listing) need the caller's id, not a database round trip.
    # Depending on ``services`` (rather than beside it) keeps Litestar resolving the two in
    # sequence instead of spawning a task group per request.
    user_id = services.tokens.verify(_bearer(request), ACCESS).user_id
    services.activity.touch(user_id)
    return user_id


async def provide_current_user(request: ASGIConnection, services: NamedDependency[Services]) -> UserRow:
    return await require_user_row(provide_user_id(request, services))


async def requires_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    user = await provide_current_user(connection, connection.app.state.services)
    if not user.is_admin:
        raise Forbidden("Administrators only.")
