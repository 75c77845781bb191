from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from app.chips.schemas import ChipCreate, ChipEventPage, ChipOut, ChipPage, ChipRename, ChipStatus
from app.chips.service import ChipService
from app.core.services import Services


class ChipsController(Controller):
    path = "/api/v1/chips"
    tags = ["Chips"]

    @get("/", operation_id="ListChips")
    async def list_chips(
        self,
        user_id: NamedDependency[UUID],
        services: NamedDependency[Services],
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
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
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> ChipEventPage:
        return await ChipService(services).events(user_id, chip_id, limit)
