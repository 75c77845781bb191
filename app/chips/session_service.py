"""Chip actions that talk to the chip's WAHA session: QR, pairing code, restart, logout.

Sending messages lives in app/messages.

Remote calls never run inside a database transaction; WAHA being down is a 503 that changed
nothing. Pairing attempts are limited per chip in Redis (shared by every process).
"""

from __future__ import annotations

import asyncio
import base64
from uuid import UUID

from app.chips import queries
from app.chips.schemas import ChipOut, QrOut
from app.chips.service import ChipService
from app.chips.status import ChipStatus, Source
from app.chips.transitions import KEEP
from app.container import Container
from app.core.errors import Conflict, DependencyUnavailable, NotFound
from app.instances.service import InstanceService
from app.waha.client import WahaClient, WahaConflict, WahaNotFound, WahaUnavailable

PAIRING_LIMIT = "pairing"


class ChipSessionService:
    def __init__(self, services: Container) -> None:
        self.s = services
        self.chips = ChipService(services)
        self.instances = InstanceService(services)

    async def _waha(self, user_id: UUID) -> WahaClient:
        instance = await self.s.scheduler.get_instance(str(user_id))
        if instance is None or not instance.base_url or instance.status != "running":
            raise DependencyUnavailable("The WAHA instance for this account is not running yet; try again shortly.")
        return self.s.waha.for_tenant(instance.base_url, user_id)

    async def _remote(self, user_id: UUID, call):
        """Run a WAHA call; a connection failure also drops the cached instance address. The
        whole call (a logout is two slow WAHA calls) fits in the request budget, else 503."""
        client = await self._waha(user_id)
        try:
            async with asyncio.timeout(self.s.settings.waha_request_budget_seconds):
                return await call(client)
        except TimeoutError:
            raise DependencyUnavailable("WAHA did not finish in time; try again shortly.") from None
        except WahaUnavailable:
            await self.s.scheduler.invalidate(str(user_id))
            raise

    async def qr(self, user_id: UUID, chip_id: UUID, *, as_png: bool) -> QrOut | bytes:
        chip = await self.chips.get(user_id, chip_id)
        if chip.status == ChipStatus.WAITING_QR:
            try:
                png = await self._remote(user_id, lambda c: c.get_qr_png(chip.session_name))
            except (WahaConflict, WahaNotFound):
                # WAHA moved on (scanned, or the QR rotation ran out) since our last event, or the
                # session is gone (the reconciler recreates it): no QR now, but the chip exists
                png = None
            if png is not None:
                if as_png:
                    return png
                data_url = "data:image/png;base64," + base64.b64encode(png).decode()
                return QrOut(
                    status=chip.status, qr_code=data_url, message="Scan this code with WhatsApp on your phone."
                )
        if as_png:
            raise Conflict("The chip is not waiting for a QR scan.", code="chip_not_waiting_qr")
        return QrOut(status=chip.status, qr_code=None, message=_qr_message(chip.status))

    async def pairing_code(self, user_id: UUID, chip_id: UUID, phone_number: str) -> str:
        chip = await self.chips.get(user_id, chip_id)
        if chip.status != ChipStatus.WAITING_QR:
            raise Conflict(
                "A pairing code can only be requested while the chip waits for pairing.", code="chip_not_waiting_qr"
            )
        await self._count_pairing_attempt(chip_id, user_id, phone_number)
        try:
            return await self._remote(user_id, lambda c: c.request_pairing_code(chip.session_name, phone_number))
        except (WahaConflict, WahaNotFound):
            # 422: WAHA's session moved on; 404: WAHA answers this for a session that is not
            # running (STOPPED, a webhook we have not applied yet) or gone
            raise Conflict("The chip is no longer waiting for pairing.", code="chip_not_waiting_qr") from None

    async def restart(self, user_id: UUID, chip_id: UUID) -> ChipOut:
        chip = await self.chips.get(user_id, chip_id)
        if chip.status in (ChipStatus.PROVISIONING, ChipStatus.DELETING):
            raise Conflict(f"The chip is {chip.status}; try again when it is done.", code="chip_busy")
        await self._count_pairing_attempt(chip_id)
        instance = await self.s.scheduler.get_instance(str(user_id))
        if instance is None or instance.status != "running" or not instance.base_url:
            # No instance (removed by an operator, or never came back): provisioning brings it up
            # and starts the session; the tenant sees provisioning -> starting -> waiting_qr.
            await self.instances.mark_pending(user_id)
            chip = await self._set_status(
                user_id, chip_id, ChipStatus.PROVISIONING, "restart requested; instance being started", running=True
            )
            await self.chips.enqueue_provisioning(chip_id)
            return chip
        before = await queries.last_status_event_at(chip_id)
        try:
            await self._remote(user_id, lambda c: c.restart_session(chip.session_name))
        except WahaNotFound:
            # the session vanished from WAHA: provisioning recreates it (and starts it)
            chip = await self._set_status(
                user_id, chip_id, ChipStatus.PROVISIONING, "session missing in WAHA; re-provisioning", running=True
            )
            await self.chips.enqueue_provisioning(chip_id)
            return chip
        # WAHA's webhooks for this restart race with this write. The restart's own STOPPED may land
        # first (then "starting" is still right), but a fast SCAN_QR_CODE / WORKING must not be
        # overwritten by our older guess: it would stay "starting" until the next event.
        return await self._set_status(
            user_id, chip_id, ChipStatus.STARTING, "restart requested", unless_webhook_since=before, running=True
        )

    async def logout(self, user_id: UUID, chip_id: UUID) -> ChipOut:
        chip = await self.chips.get(user_id, chip_id)
        if chip.status in (ChipStatus.PROVISIONING, ChipStatus.DELETING):
            raise Conflict(f"The chip is {chip.status}; try again when it is done.", code="chip_busy")

        async def logout_then_stop(client: WahaClient) -> None:
            # Log out first: WAHA unpairs the device from the phone only while the session runs
            # (a stopped session's logout just forgets the local auth, and the phone keeps listing
            # the device). A running session's logout restarts it into a fresh QR, so stop it
            # after: logging out means "unlink this number" until the tenant asks for a pairing.
            # (A stop left undone, e.g. past the request budget, is finished by the reconciler
            # once the chip is disconnected and meant to stay down.)
            await client.logout_session(chip.session_name)
            await client.stop_session(chip.session_name)

        try:
            await self._remote(user_id, logout_then_stop)
        except WahaNotFound:
            pass  # nothing linked any more: the outcome the tenant asked for
        return await self._set_status(
            user_id, chip_id, ChipStatus.DISCONNECTED, "logout requested", clear_phone=True, running=False
        )

    async def remove_instance(self, user_id: UUID) -> int:
        """An operator removes a tenant's instance: it stays removed until the tenant restarts a
        chip, and every chip of theirs goes ``disconnected``. Returns how many chips moved."""
        await self.instances.remove(user_id)
        moved = await self.chips.transitions.move_all(
            user_id,
            ChipStatus.DISCONNECTED,
            Source.ADMIN,
            "instance removed by an operator",
            never_from=(ChipStatus.DELETING,),
        )
        return len(moved)

    async def _count_pairing_attempt(
        self, chip_id: UUID, user_id: UUID | None = None, phone: str | None = None
    ) -> None:
        limit = self.s.settings.pairing_attempts_per_hour
        if user_id is not None and phone:
            # Per tenant and phone number as well: deleting and re-creating the chip must not buy
            # another round of pairing codes pushed to the same phone.
            await self.s.limiter.hit(
                PAIRING_LIMIT,
                f"{user_id}:{''.join(ch for ch in phone if ch.isdigit())}",
                limit=limit,
                window_seconds=3600,
                detail=f"At most {limit} pairing attempts per phone number per hour.",
            )
        await self.s.limiter.hit(
            PAIRING_LIMIT,
            str(chip_id),
            limit=limit,
            window_seconds=3600,
            detail=f"At most {limit} pairing attempts per chip per hour.",
        )

    async def _set_status(
        self,
        user_id: UUID,
        chip_id: UUID,
        status: ChipStatus,
        detail: str,
        *,
        clear_phone: bool = False,
        unless_webhook_since: object = KEEP,
        running: object = KEEP,
    ) -> ChipOut:
        """Move the chip to ``status`` (history source ``api``) and return the chip as this write
        left it (see ``ChipTransitions.move`` for ``unless_webhook_since``)."""
        moved = await self.chips.transitions.move(
            chip_id,
            status,
            Source.API,
            detail,
            user_id=user_id,
            unless_webhook_since=unless_webhook_since,
            phone=None if clear_phone else KEEP,
            running=running,
            then=lambda: self.chips.get(user_id, chip_id),
        )
        if moved.result is None:
            raise NotFound("Chip not found.")
        return moved.result


def _qr_message(status: str) -> str:
    return {
        "provisioning": "The chip is being prepared; the QR code appears shortly.",
        "starting": "The session is starting; the QR code appears shortly.",
        "connected": "Already linked; no QR code needed.",
        "disconnected": "The session is stopped; restart it to get a new QR code.",
        "failed": "Pairing failed or expired; restart the chip to get a new QR code.",
        "deleting": "The chip is being deleted.",
    }.get(status, "No QR code available.")
