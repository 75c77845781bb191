"""Provider of the instances service (the admin instances routes)."""

from __future__ import annotations

from litestar.di import NamedDependency

from app.container import Container
from app.instances.service import InstanceService


def provide_instance_service(container: NamedDependency[Container]) -> InstanceService:
    return InstanceService(container)
