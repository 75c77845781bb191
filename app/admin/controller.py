from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get, patch
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from app.admin.schemas import AdminUserOut, AdminUserPage, AdminUserUpdate
from app.admin.service import AdminService
from app.auth.dependencies import requires_admin
from app.core.services import Services


class AdminUsersController(Controller):
    path = "/api/v1/admin/users"
    tags = ["Admin"]
    guards = [requires_admin]

    @get("/", operation_id="AdminListUsers")
    async def list_users(
        self,
        services: NamedDependency[Services],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> AdminUserPage:
        return await AdminService(services).list_users(limit, offset)

    @patch("/{target_user_id:uuid}", operation_id="AdminUpdateUser")
    async def update_user(
        self, target_user_id: FromPath[UUID], data: JSONBody[AdminUserUpdate], services: NamedDependency[Services]
    ) -> AdminUserOut:
        return await AdminService(services).update_user(target_user_id, data)
