"""Provider of the health service (registered on the health controller)."""

from __future__ import annotations

from litestar.di import NamedDependency

from app.container import Container
from app.health.service import HealthService


def provide_health_service(container: NamedDependency[Container]) -> HealthService:
    return HealthService(container)
