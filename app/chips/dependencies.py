"""Providers of the chips services (registered on the chips controller)."""

from __future__ import annotations

from uuid import UUID

from litestar.di import NamedDependency

from app.chips.service import ChipService
from app.chips.session_service import ChipSessionService
from app.container import Container

# Every chip route is authenticated. Depending on ``user_id`` (not only on ``container``) keeps the
# route's dependencies one chain, container → user_id → service, which Litestar resolves in
# sequence; side by side they would cost a task group per request on the hottest route (listing).


def provide_chip_service(container: NamedDependency[Container], user_id: NamedDependency[UUID]) -> ChipService:
    return ChipService(container)


def provide_chip_session_service(
    container: NamedDependency[Container], user_id: NamedDependency[UUID]
) -> ChipSessionService:
    return ChipSessionService(container)
