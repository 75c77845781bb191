"""Provider of the admin service. Admin routes authenticate in a guard (app.auth.dependencies),
so their only dependency chain is container → service."""

from __future__ import annotations

from litestar.di import NamedDependency

from app.admin.service import AdminService
from app.audit.service import AuditService
from app.container import Container


def provide_admin_service(container: NamedDependency[Container]) -> AdminService:
    return AdminService(container)


def provide_audit_service(container: NamedDependency[Container]) -> AuditService:
    return AuditService(container.settings)
