from __future__ import annotations

from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from app.auth.dependencies import provide_current_user
from app.auth.schemas import AuthOut, LoginIn, RegisterIn, StreamTokenOut
from app.auth.service import AuthService
from app.core.services import Services
from app.users.schemas import UserOut
from app.users.service import UserRow, to_user_out


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["Auth"]

    @post("/register", status_code=201, operation_id="Register")
    async def register(self, data: JSONBody[RegisterIn], services: NamedDependency[Services]) -> AuthOut:
        return await AuthService(services).register(data)

    @post("/login", status_code=200, operation_id="Login")
    async def login(self, data: JSONBody[LoginIn], services: NamedDependency[Services]) -> AuthOut:
        return await AuthService(services).login(data)

    @get("/me", operation_id="Me", dependencies={"current_user": Provide(provide_current_user)})
    async def me(self, current_user: NamedDependency[UserRow], services: NamedDependency[Services]) -> UserOut:
        return to_user_out(current_user, services.settings.plan_limits)

    @post("/stream-token", status_code=200, operation_id="StreamToken")
    async def stream_token(self, user_id: NamedDependency[UUID], services: NamedDependency[Services]) -> StreamTokenOut:
        return await AuthService(services).stream_token(user_id)
