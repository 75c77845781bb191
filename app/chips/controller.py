from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from app.chips.schemas import (
    ChipCreate,
    ChipEventPage,
    ChipOut,
    ChipPage,
    ChipRename,
    ChipStatus,
    MessageIn,
    MessageOut,
    PairingCodeIn,
    PairingCodeOut,
    QrOut,
)
from app.chips.service import ChipService
from app.chips.session_service import ChipSessionService
from app.core.pagination import Limit, Offset, limit_type
from app.core.services import Services

ChipLimit = limit_type(100)


class ChipsController(Controller):
    path = "/api/v1/chips"
    tags = ["Chips"]

    @get("/", operation_id="ListChips")
    async def list_chips(
        self,
        user_id: NamedDependency[UUID],
        services: NamedDependency[Services],
        limit: ChipLimit = 50,
        offset: Offset = 0,
        status: Annotated[ChipStatus | None, QueryParameter()] = None,
    ) -> ChipPage:
        return await ChipService(services).list(user_id, limit=limit, offset=offset, status=status)

    @post("/", status_code=202, operation_id="CreateChip")
    async def create_chip(
        self, data: JSONBody[ChipCreate], user_id: NamedDependency[UUID], services: NamedDependency[Services]
    ) -> ChipOut:
        return await ChipService(services).create(user_id, data)

    @get("/{chip_id:uuid}", operation_id="GetChip")
    async def get_chip(
        self, chip_id: FromPath[UUID], user_id: NamedDependency[UUID], services: NamedDependency[Services]
    ) -> ChipOut:
        return await ChipService(services).get(user_id, chip_id)

    @patch("/{chip_id:uuid}", operation_id="RenameChip")
    async def rename_chip(
        self,
        chip_id: FromPath[UUID],
        data: JSONBody[ChipRename],
        user_id: NamedDependency[UUID],
        services: NamedDependency[Services],
    ) -> ChipOut:
        return await ChipService(services).rename(user_id, chip_id, data.alias)

    @delete("/{chip_id:uuid}", status_code=202, operation_id="DeleteChip")
    async def delete_chip(
        self, chip_id: FromPath[UUID], user_id: NamedDependency[UUID], services: NamedDependency[Services]
    ) -> Response[ChipOut]:
        chip = await ChipService(services).request_delete(user_id, chip_id)
        return Response(chip, status_code=202)

    @get("/{chip_id:uuid}/events", operation_id="ListChipEvents")
    async def chip_events(
        self,
        chip_id: FromPath[UUID],
        user_id: NamedDependency[UUID],
        services: NamedDependency[Services],
        limit: Limit = 100,
    ) -> ChipEventPage:
        return await ChipService(services).events(user_id, chip_id, limit)

    @get("/{chip_id:uuid}/qr", operation_id="GetChipQr")
    async def chip_qr(
        self,
        request: Request,
        chip_id: FromPath[UUID],
        user_id: NamedDependency[UUID],
        services: NamedDependency[Services],
    ) -> Response[QrOut]:
        """JSON with a data-URL QR, or the PNG itself with ``Accept: image/png``."""
        as_png = "image/png" in request.headers.get("accept", "")
        result = await ChipSessionService(services).qr(user_id, chip_id, as_png=as_png)
        if isinstance(result, bytes):
            return Response(result, media_type="image/png", headers={"Cache-Control": "no-store"})
        return Response(result, headers={"Cache-Control": "no-store"})

    @post("/{chip_id:uuid}/pairing-code", status_code=200, operation_id="RequestPairingCode")
    async def pairing_code(
        self,
        chip_id: FromPath[UUID],
        data: JSONBody[PairingCodeIn],
        user_id: NamedDependency[UUID],
        services: NamedDependency[Services],
    ) -> PairingCodeOut:
        code = await ChipSessionService(services).pairing_code(user_id, chip_id, data.phone_number.lstrip("+"))
        return PairingCodeOut(code=code)

    @post("/{chip_id:uuid}/restart", status_code=202, operation_id="RestartChip")
    async def restart_chip(
        self, chip_id: FromPath[UUID], user_id: NamedDependency[UUID], services: NamedDependency[Services]
    ) -> ChipOut:
        return await ChipSessionService(services).restart(user_id, chip_id)

    @post("/{chip_id:uuid}/logout", status_code=202, operation_id="LogoutChip")
    async def logout_chip(
        self, chip_id: FromPath[UUID], user_id: NamedDependency[UUID], services: NamedDependency[Services]
    ) -> ChipOut:
        return await ChipSessionService(services).logout(user_id, chip_id)

    @post("/{chip_id:uuid}/messages", status_code=202, operation_id="SendChipMessage")
    async def send_message(
        self,
        chip_id: FromPath[UUID],
        data: JSONBody[MessageIn],
        user_id: NamedDependency[UUID],
        services: NamedDependency[Services],
    ) -> MessageOut:
        return await ChipSessionService(services).send_message(user_id, chip_id, data)
