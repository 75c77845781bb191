from __future__ import annotations

from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from app.auth.dependencies import provide_auth_service, provide_authenticated_auth_service, provide_current_user
from app.auth.schemas import AuthOut, LoginIn, RegisterIn, StreamTokenOut
from app.auth.service import AuthService
from app.users.schemas import UserOut


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["Auth"]

    @post(
        "/register",
        status_code=201,
        operation_id="Register",
        dependencies={"auth_service": Provide(provide_auth_service, sync_to_thread=False)},
    )
    async def register(self, data: JSONBody[RegisterIn], auth_service: NamedDependency[AuthService]) -> AuthOut:
        return await auth_service.register(data)

    @post(
        "/login",
        status_code=200,
        operation_id="Login",
        dependencies={"auth_service": Provide(provide_auth_service, sync_to_thread=False)},
    )
    async def login(self, data: JSONBody[LoginIn], auth_service: NamedDependency[AuthService]) -> AuthOut:
        return await auth_service.login(data)

    @get("/me", operation_id="Me", dependencies={"current_user": Provide(provide_current_user)})
    async def me(self, current_user: NamedDependency[UserOut]) -> UserOut:
        return current_user

    @post(
        "/stream-token",
        status_code=200,
        operation_id="StreamToken",
        dependencies={"auth_service": Provide(provide_authenticated_auth_service, sync_to_thread=False)},
    )
    async def stream_token(
        self, user_id: NamedDependency[UUID], auth_service: NamedDependency[AuthService]
    ) -> StreamTokenOut:
        return await auth_service.stream_token(user_id)
