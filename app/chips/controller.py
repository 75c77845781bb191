from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from app.chips.dependencies import provide_chip_service, provide_chip_session_service
from app.chips.schemas import (
    ChipCreate,
    ChipEventPage,
    ChipOut,
    ChipPage,
    ChipRename,
    ChipStatus,
    PairingCodeIn,
    PairingCodeOut,
    QrOut,
)
from app.chips.service import ChipService
from app.chips.session_service import ChipSessionService
from app.core.pagination import Limit, Offset

ChipLimit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1 to 100.")]


class ChipsController(Controller):
    path = "/api/v1/chips"
    tags = ["Chips"]
    dependencies = {
        "chip_service": Provide(provide_chip_service, sync_to_thread=False),
        "chip_session_service": Provide(provide_chip_session_service, sync_to_thread=False),
    }

    @get("/", operation_id="ListChips")
    async def list_chips(
        self,
        user_id: NamedDependency[UUID],
        chip_service: NamedDependency[ChipService],
        limit: ChipLimit = 50,
        offset: Offset = 0,
        status: Annotated[ChipStatus | None, QueryParameter()] = None,
    ) -> ChipPage:
        return await chip_service.list(user_id, limit=limit, offset=offset, status=status)

    @post("/", status_code=202, operation_id="CreateChip")
    async def create_chip(
        self, data: JSONBody[ChipCreate], user_id: NamedDependency[UUID], chip_service: NamedDependency[ChipService]
    ) -> ChipOut:
        return await chip_service.create(user_id, data)

    @get("/{chip_id:uuid}", operation_id="GetChip")
    async def get_chip(
        self, chip_id: FromPath[UUID], user_id: NamedDependency[UUID], chip_service: NamedDependency[ChipService]
    ) -> ChipOut:
        return await chip_service.get(user_id, chip_id)

    @patch("/{chip_id:uuid}", operation_id="RenameChip")
    async def rename_chip(
        self,
        chip_id: FromPath[UUID],
        data: JSONBody[ChipRename],
        user_id: NamedDependency[UUID],
        chip_service: NamedDependency[ChipService],
    ) -> ChipOut:
        return await chip_service.rename(user_id, chip_id, data.alias)

    @delete("/{chip_id:uuid}", status_code=202, operation_id="DeleteChip")
    async def delete_chip(
        self, chip_id: FromPath[UUID], user_id: NamedDependency[UUID], chip_service: NamedDependency[ChipService]
    ) -> Response[ChipOut]:
        chip = await chip_service.request_delete(user_id, chip_id)
        return Response(chip, status_code=202)

    @get("/{chip_id:uuid}/events", operation_id="ListChipEvents")
    async def chip_events(
        self,
        chip_id: FromPath[UUID],
        user_id: NamedDependency[UUID],
        chip_service: NamedDependency[ChipService],
        limit: Limit = 100,
    ) -> ChipEventPage:
        return await chip_service.events(user_id, chip_id, limit)

    @get("/{chip_id:uuid}/qr", operation_id="GetChipQr")
    async def chip_qr(
        self,
        request: Request,
        chip_id: FromPath[UUID],
        user_id: NamedDependency[UUID],
        chip_session_service: NamedDependency[ChipSessionService],
    ) -> Response[QrOut | bytes]:
        """JSON with a data-URL QR, or the PNG itself with ``Accept: image/png``."""
        as_png = "image/png" in request.headers.get("accept", "")
        result = await chip_session_service.qr(user_id, chip_id, as_png=as_png)
        if isinstance(result, bytes):
            return Response(result, media_type="image/png", headers={"Cache-Control": "no-store"})
        return Response(result, headers={"Cache-Control": "no-store"})

    @post("/{chip_id:uuid}/pairing-code", status_code=200, operation_id="RequestPairingCode")
    async def pairing_code(
        self,
        chip_id: FromPath[UUID],
        data: JSONBody[PairingCodeIn],
        user_id: NamedDependency[UUID],
        chip_session_service: NamedDependency[ChipSessionService],
    ) -> PairingCodeOut:
        code = await chip_session_service.pairing_code(user_id, chip_id, data.phone_number.lstrip("+"))
        return PairingCodeOut(code=code)

    @post("/{chip_id:uuid}/restart", status_code=202, operation_id="RestartChip")
    async def restart_chip(
        self,
        chip_id: FromPath[UUID],
        user_id: NamedDependency[UUID],
        chip_session_service: NamedDependency[ChipSessionService],
    ) -> ChipOut:
        return await chip_session_service.restart(user_id, chip_id)

    @post("/{chip_id:uuid}/logout", status_code=202, operation_id="LogoutChip")
    async def logout_chip(
        self,
        chip_id: FromPath[UUID],
        user_id: NamedDependency[UUID],
        chip_session_service: NamedDependency[ChipSessionService],
    ) -> ChipOut:
        return await chip_session_service.logout(user_id, chip_id)
