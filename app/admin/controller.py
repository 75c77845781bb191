from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from app.admin.schemas import AdminChipPage, AdminInstanceOut, AdminUserOut, AdminUserPage, AdminUserUpdate
from app.admin.service import AdminService
from app.auth.dependencies import requires_admin
from app.chips.schemas import ChipStatus
from app.chips.session_service import ChipSessionService
from app.core.pagination import MAX_LIMIT, Limit, Offset
from app.core.services import Services
from app.instances.service import InstanceService
from app.proxies.schemas import ProxyCreate, ProxyOut, ProxyUpdate
from app.proxies.service import ProxyService


class AdminUsersController(Controller):
    path = "/api/v1/admin/users"
    tags = ["Admin"]
    guards = [requires_admin]

    @get("/", operation_id="AdminListUsers")
    async def list_users(
        self,
        services: NamedDependency[Services],
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> AdminUserPage:
        return await AdminService(services).list_users(limit, offset)

    @patch("/{target_user_id:uuid}", operation_id="AdminUpdateUser")
    async def update_user(
        self, target_user_id: FromPath[UUID], data: JSONBody[AdminUserUpdate], services: NamedDependency[Services]
    ) -> AdminUserOut:
        return await AdminService(services).update_user(target_user_id, data)


class AdminInstancesController(Controller):
    path = "/api/v1/admin/instances"
    tags = ["Admin"]
    guards = [requires_admin]

    @get("/", operation_id="AdminListInstances")
    async def list_instances(
        self, services: NamedDependency[Services], limit: Limit = MAX_LIMIT, offset: Offset = 0
    ) -> Response[list[AdminInstanceOut]]:
        # The body stays the bare array clients already read; the page's total rides in X-Total-Count.
        page = await AdminService(services).list_instances(limit, offset)
        return Response(page.items, headers=page.headers())

    @post("/{target_user_id:uuid}/restart", status_code=202, operation_id="AdminRestartInstance")
    async def restart_instance(self, target_user_id: FromPath[UUID], services: NamedDependency[Services]) -> Response:
        await InstanceService(services).restart(target_user_id)
        return Response({"status": "restarting"}, status_code=202)

    @delete("/{target_user_id:uuid}", status_code=202, operation_id="AdminRemoveInstance")
    async def remove_instance(self, target_user_id: FromPath[UUID], services: NamedDependency[Services]) -> Response:
        disconnected = await ChipSessionService(services).remove_instance(target_user_id)
        return Response({"status": "removed", "chips_disconnected": disconnected}, status_code=202)


class AdminProxiesController(Controller):
    path = "/api/v1/admin/proxies"
    tags = ["Admin"]
    guards = [requires_admin]

    @get("/", operation_id="AdminListProxies")
    async def list_proxies(
        self, services: NamedDependency[Services], limit: Limit = MAX_LIMIT, offset: Offset = 0
    ) -> Response[list[ProxyOut]]:
        # The body stays the bare array clients already read; the page's total rides in X-Total-Count.
        page = await ProxyService(services).list(limit, offset)
        return Response(page.items, headers=page.headers())

    @post("/", status_code=201, operation_id="AdminCreateProxy")
    async def create_proxy(self, data: JSONBody[ProxyCreate], services: NamedDependency[Services]) -> ProxyOut:
        return await ProxyService(services).create(data)

    @patch("/{proxy_id:uuid}", operation_id="AdminUpdateProxy")
    async def update_proxy(
        self, proxy_id: FromPath[UUID], data: JSONBody[ProxyUpdate], services: NamedDependency[Services]
    ) -> ProxyOut:
        return await ProxyService(services).update(proxy_id, data)

    @delete("/{proxy_id:uuid}", status_code=204, operation_id="AdminDeleteProxy")
    async def delete_proxy(self, proxy_id: FromPath[UUID], services: NamedDependency[Services]) -> None:
        await ProxyService(services).delete(proxy_id)


class AdminChipsController(Controller):
    path = "/api/v1/admin/chips"
    tags = ["Admin"]
    guards = [requires_admin]

    @get("/", operation_id="AdminListChips")
    async def list_chips(
        self,
        services: NamedDependency[Services],
        owner: Annotated[UUID | None, QueryParameter(name="user_id")] = None,
        status: Annotated[ChipStatus | None, QueryParameter()] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> AdminChipPage:
        return await AdminService(services).list_chips(owner, status, limit, offset)
