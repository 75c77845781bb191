"""Acting as the tenant's phone on their emulated WAHA (development only)."""

from __future__ import annotations

from uuid import UUID

import httpx

from app.chips.schemas import ChipOut
from app.chips.service import ChipService
from app.chips.status import ChipStatus
from app.container import Container
from app.core import context
from app.core.errors import Conflict, DependencyUnavailable
from app.core.tenant_keys import TenantKeys


def _not_waiting() -> Conflict:
    return Conflict("The chip is not waiting for a QR scan.", code="chip_not_waiting_qr")


def _not_connected() -> Conflict:
    return Conflict("The chip is not connected.", code="chip_not_connected")


class DevService:
    def __init__(self, services: Container) -> None:
        self.s = services
        self.chips = ChipService(services)

    async def scan(self, user_id: UUID, chip_id: UUID, phone_number: str | None) -> ChipOut:
        """The emulator behaves as if the chip's QR was scanned; WAHA's webhook then connects it."""
        chip = await self.chips.get(user_id, chip_id)  # tenant-scoped: another tenant's chip is 404
        if chip.status != ChipStatus.WAITING_QR:
            raise _not_waiting()
        response = await self._control(
            user_id, chip.session_name, "scan", {"phone": phone_number} if phone_number else {}
        )
        if response.status_code == 409:  # the emulator's session left SCAN_QR_CODE meanwhile
            raise _not_waiting()
        if response.status_code >= 400:
            raise DependencyUnavailable(f"The emulated WAHA instance refused the scan ({response.status_code}).")
        return await self.chips.get(user_id, chip_id)

    async def fault(self, user_id: UUID, chip_id: UUID, fault: str | None, survive_restart: bool) -> ChipOut:
        """The chip's emulated session turns into a zombie (liveness testing), or back to normal."""
        chip = await self.chips.get(user_id, chip_id)
        if fault is not None and chip.status != ChipStatus.CONNECTED:
            raise _not_connected()
        body = {"fault": fault, "survive_restart": survive_restart}
        response = await self._control(user_id, chip.session_name, "fault", body)
        if response.status_code == 409:  # the emulated session is not WORKING (any more)
            raise _not_connected()
        if response.status_code >= 400:
            raise DependencyUnavailable(f"The emulated WAHA instance refused the fault ({response.status_code}).")
        return await self.chips.get(user_id, chip_id)

    async def _control(self, user_id: UUID, session_name: str, action: str, body: dict) -> httpx.Response:
        """A control call on the tenant's emulator (its API key, like WAHA's own routes)."""
        instance = await self.s.scheduler.get_instance(str(user_id))
        if instance is None or not instance.base_url:
            raise DependencyUnavailable("The emulated WAHA instance of this account is not running yet.")
        url = f"{instance.base_url.rstrip('/')}/_emulator/sessions/{session_name}/{action}"
        key = TenantKeys(self.s.settings).api_key(user_id)
        try:
            async with httpx.AsyncClient(timeout=self.s.settings.waha_timeout_seconds) as http:
                return await http.post(url, json=body, headers={**context.outgoing_headers(), "X-Api-Key": key})
        except httpx.HTTPError:
            raise DependencyUnavailable("The emulated WAHA instance did not answer.") from None
