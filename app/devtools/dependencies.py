from __future__ import annotations

from uuid import UUID

from litestar.di import NamedDependency

from app.container import Container
from app.devtools.service import DevService


def provide_dev_service(container: NamedDependency[Container], user_id: NamedDependency[UUID]) -> DevService:
    # after user_id: one chain, as on the chip routes
    return DevService(container)
