from __future__ import annotations

from uuid import UUID

from litestar import Controller, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from app.chips.schemas import ChipOut
from app.devtools.dependencies import provide_dev_service
from app.devtools.schemas import FaultIn, ScanIn
from app.devtools.service import DevService


class DevChipsController(Controller):
    path = "/api/v1/dev/chips"
    tags = ["Development"]
    dependencies = {"dev_service": Provide(provide_dev_service, sync_to_thread=False)}

    @post("/{chip_id:uuid}/scan", status_code=202, operation_id="DevScanChip")
    async def scan(
        self,
        chip_id: FromPath[UUID],
        user_id: NamedDependency[UUID],
        dev_service: NamedDependency[DevService],
        data: JSONBody[ScanIn | None] = None,
    ) -> ChipOut:
        return await dev_service.scan(user_id, chip_id, data.phone_number if data else None)

    @post("/{chip_id:uuid}/fault", status_code=202, operation_id="DevFaultChip")
    async def fault(
        self,
        chip_id: FromPath[UUID],
        user_id: NamedDependency[UUID],
        dev_service: NamedDependency[DevService],
        data: JSONBody[FaultIn],
    ) -> ChipOut:
        return await dev_service.fault(user_id, chip_id, data.fault, data.survive_restart)
