from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from app.admin.dependencies import provide_admin_service, provide_audit_service
from app.admin.schemas import (
    AdminChipPage,
    AdminInstanceOut,
    AdminUserCreate,
    AdminUserOut,
    AdminUserPage,
    AdminUserUpdate,
)
from app.admin.service import AdminService
from app.audit.schemas import AuditPage
from app.audit.service import AuditService
from app.auth.dependencies import requires_admin
from app.chips.dependencies import provide_chip_session_service
from app.chips.schemas import ChipStatus
from app.chips.session_service import ChipSessionService
from app.core.pagination import MAX_LIMIT, Limit, Offset
from app.instances.dependencies import provide_instance_service
from app.instances.service import InstanceService
from app.proxies.dependencies import provide_proxy_service
from app.proxies.schemas import ProxyCreate, ProxyOut, ProxyUpdate
from app.proxies.service import ProxyService
from app.users.schemas import UserOut


class AdminUsersController(Controller):
    path = "/api/v1/admin/users"
    tags = ["Admin"]
    guards = [requires_admin]
    dependencies = {"admin_service": Provide(provide_admin_service, sync_to_thread=False)}

    @get("/", operation_id="AdminListUsers")
    async def list_users(
        self,
        admin_service: NamedDependency[AdminService],
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> AdminUserPage:
        return await admin_service.list_users(limit, offset)

    @post("/", status_code=201, operation_id="AdminCreateUser")
    async def create_user(
        self, data: JSONBody[AdminUserCreate], admin_service: NamedDependency[AdminService]
    ) -> UserOut:
        return await admin_service.create_user(data)

    @patch("/{target_user_id:uuid}", operation_id="AdminUpdateUser")
    async def update_user(
        self,
        target_user_id: FromPath[UUID],
        data: JSONBody[AdminUserUpdate],
        admin_service: NamedDependency[AdminService],
    ) -> AdminUserOut:
        return await admin_service.update_user(target_user_id, data)


class AdminInstancesController(Controller):
    path = "/api/v1/admin/instances"
    tags = ["Admin"]
    guards = [requires_admin]
    dependencies = {
        "admin_service": Provide(provide_admin_service, sync_to_thread=False),
        "instance_service": Provide(provide_instance_service, sync_to_thread=False),
        "chip_session_service": Provide(provide_chip_session_service, sync_to_thread=False),
    }

    @get("/", operation_id="AdminListInstances")
    async def list_instances(
        self, admin_service: NamedDependency[AdminService], limit: Limit = MAX_LIMIT, offset: Offset = 0
    ) -> Response[list[AdminInstanceOut]]:
        # The body stays the bare array clients already read; the page's total rides in X-Total-Count.
        page = await admin_service.list_instances(limit, offset)
        return Response(page.items, headers=page.headers())

    @post("/{target_user_id:uuid}/restart", status_code=202, operation_id="AdminRestartInstance")
    async def restart_instance(
        self, target_user_id: FromPath[UUID], instance_service: NamedDependency[InstanceService]
    ) -> Response:
        await instance_service.restart(target_user_id)
        return Response({"status": "restarting"}, status_code=202)

    @delete("/{target_user_id:uuid}", status_code=202, operation_id="AdminRemoveInstance")
    async def remove_instance(
        self, target_user_id: FromPath[UUID], chip_session_service: NamedDependency[ChipSessionService]
    ) -> Response:
        disconnected = await chip_session_service.remove_instance(target_user_id)
        return Response({"status": "removed", "chips_disconnected": disconnected}, status_code=202)


class AdminProxiesController(Controller):
    path = "/api/v1/admin/proxies"
    tags = ["Admin"]
    guards = [requires_admin]
    dependencies = {"proxy_service": Provide(provide_proxy_service, sync_to_thread=False)}

    @get("/", operation_id="AdminListProxies")
    async def list_proxies(
        self, proxy_service: NamedDependency[ProxyService], limit: Limit = MAX_LIMIT, offset: Offset = 0
    ) -> Response[list[ProxyOut]]:
        # The body stays the bare array clients already read; the page's total rides in X-Total-Count.
        page = await proxy_service.page(limit, offset)
        return Response(page.items, headers=page.headers())

    @post("/", status_code=201, operation_id="AdminCreateProxy")
    async def create_proxy(self, data: JSONBody[ProxyCreate], proxy_service: NamedDependency[ProxyService]) -> ProxyOut:
        return await proxy_service.create(data)

    @patch("/{proxy_id:uuid}", operation_id="AdminUpdateProxy")
    async def update_proxy(
        self, proxy_id: FromPath[UUID], data: JSONBody[ProxyUpdate], proxy_service: NamedDependency[ProxyService]
    ) -> ProxyOut:
        return await proxy_service.update(proxy_id, data)

    @delete("/{proxy_id:uuid}", status_code=204, operation_id="AdminDeleteProxy")
    async def delete_proxy(self, proxy_id: FromPath[UUID], proxy_service: NamedDependency[ProxyService]) -> None:
        await proxy_service.delete(proxy_id)


class AdminChipsController(Controller):
    path = "/api/v1/admin/chips"
    tags = ["Admin"]
    guards = [requires_admin]
    dependencies = {"admin_service": Provide(provide_admin_service, sync_to_thread=False)}

    @get("/", operation_id="AdminListChips")
    async def list_chips(
        self,
        admin_service: NamedDependency[AdminService],
        owner: Annotated[UUID | None, QueryParameter(name="user_id")] = None,
        status: Annotated[ChipStatus | None, QueryParameter()] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> AdminChipPage:
        return await admin_service.list_chips(owner, status, limit, offset)


class AdminAuditController(Controller):
    path = "/api/v1/admin/audit"
    tags = ["Admin"]
    guards = [requires_admin]
    dependencies = {"audit_service": Provide(provide_audit_service, sync_to_thread=False)}

    @get("/", operation_id="AdminListAudit", summary="List audit entries (newest first)")
    async def list_audit(
        self,
        audit_service: NamedDependency[AuditService],
        limit: Limit = 100,
        before: Annotated[
            UUID | None, QueryParameter(description="Cursor: `next_before` of the previous page.")
        ] = None,
        actor_id: Annotated[UUID | None, QueryParameter(description="Only entries by this user.")] = None,
        action: Annotated[
            str | None, QueryParameter(max_length=64, description="Only this action, e.g. `user.update`.")
        ] = None,
        target_id: Annotated[
            str | None, QueryParameter(max_length=254, description="Only entries about this target (an id).")
        ] = None,
    ) -> AuditPage:
        """Who changed what: admin changes and security events, with non-secret before/after
        snapshots and the request id that made them. Page with `before=<next_before>`."""
        return await audit_service.page(
            limit=limit, before=before, actor_id=actor_id, action=action, target_id=target_id
        )
