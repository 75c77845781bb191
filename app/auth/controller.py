from __future__ import annotations

from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from app.auth.dependencies import (
    provide_auth_service,
    provide_authenticated_auth_service,
    provide_client_ip,
    provide_current_user,
    provide_token_auth_service,
    provide_token_claims,
)
from app.auth.schemas import AuthOut, LoginIn, PasswordChangeIn, RegisterIn, StreamTokenOut
from app.auth.service import AuthService
from app.core.security import TokenClaims
from app.users.schemas import UserOut

_ANONYMOUS = {
    "client_ip": Provide(provide_client_ip, sync_to_thread=False),
    "auth_service": Provide(provide_auth_service, sync_to_thread=False),
}
_BY_TOKEN = {
    "token_claims": Provide(provide_token_claims),
    "auth_service": Provide(provide_token_auth_service, sync_to_thread=False),
}


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["Auth"]

    @post("/register", status_code=201, operation_id="Register", dependencies=_ANONYMOUS)
    async def register(
        self, data: JSONBody[RegisterIn], client_ip: NamedDependency[str], auth_service: NamedDependency[AuthService]
    ) -> AuthOut:
        return await auth_service.register(data, client_ip)

    @post("/login", status_code=200, operation_id="Login", dependencies=_ANONYMOUS)
    async def login(
        self, data: JSONBody[LoginIn], client_ip: NamedDependency[str], auth_service: NamedDependency[AuthService]
    ) -> AuthOut:
        return await auth_service.login(data, client_ip)

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

    @post("/password", status_code=200, operation_id="ChangePassword", dependencies=_BY_TOKEN)
    async def change_password(
        self,
        data: JSONBody[PasswordChangeIn],
        token_claims: NamedDependency[TokenClaims],
        auth_service: NamedDependency[AuthService],
    ) -> AuthOut:
        """Every earlier token of the user stops working; the answer carries a fresh one."""
        return await auth_service.change_password(token_claims, data)

    @post("/logout", status_code=204, operation_id="Logout", dependencies=_BY_TOKEN)
    async def logout(
        self, token_claims: NamedDependency[TokenClaims], auth_service: NamedDependency[AuthService]
    ) -> None:
        """This token stops working (in every API process within 5 seconds)."""
        await auth_service.logout(token_claims)
