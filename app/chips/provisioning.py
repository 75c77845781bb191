"""The slow, failure-prone chip work the SAQ workers run: provision, re-proxy, tear down.

Every step is idempotent, so a job re-run after a crash at any point converges on the same
state: ensure_instance is idempotent, the proxy assignment keeps a usable proxy, the WAHA session
is created or brought in line with the desired config, and teardown treats "already gone" as done.
Status changes themselves come back through WAHA's webhooks.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from app.chips import queries
from app.chips.status import ChipStatus, Source
from app.chips.transitions import ChipTransitions
from app.container import Container
from app.core.errors import DependencyUnavailable
from app.core.queue import PROVISION_CHIP
from app.core.redis import REDIS_UNAVAILABLE_ERRORS, key
from app.core.tenant_keys import TenantKeys, tenant_webhook_url
from app.instances.service import InstanceService
from app.proxies.service import ProxyService
from app.waha.client import WahaClient, WahaNotFound, WahaUnavailable
from app.waha.schemas import DEFAULT_EVENTS, ProxyConfig, SessionInfo
from app.waha.sessions import build_session_config, chip_metadata

logger = logging.getLogger("whago.provisioning")


def reports_to_us(session: SessionInfo, metadata: dict[str, str], webhook_url: str, signing_key: str | None) -> bool:
    """Does the session carry our metadata and a webhook to our URL signed with our current key?

    False after a webhook key rotation or a public URL change: the session must be updated, or
    its events would be rejected (or go nowhere). Unknown (no config echoed) counts as fine.
    """
    current = session.config
    if current is None:
        return True
    if dict(current.metadata or {}) != metadata:
        return False
    return any(
        h.url == webhook_url
        and h.hmac is not None
        and h.hmac.key in (None, signing_key)  # None: WAHA hid it
        # a session configured before WHAGO handled message.ack must be updated to subscribe to it
        and (set(DEFAULT_EVENTS) <= set(h.events) or "*" in h.events)
        for h in current.webhooks or []
    )


def _differs(session: SessionInfo, desired: dict[str, Any]) -> bool:
    """Does WAHA's session config differ from what we want in what matters to us?"""
    current = session.config
    if current is None:
        return True
    want_hook = desired["webhooks"][0]
    if not reports_to_us(session, desired["metadata"], want_hook["url"], (want_hook.get("hmac") or {}).get("key")):
        return True
    want_proxy = desired.get("proxy") or {}
    have_proxy = current.proxy
    if bool(want_proxy) != bool(have_proxy):
        return True
    return have_proxy is not None and (have_proxy.server, have_proxy.username) != (
        want_proxy.get("server"),
        want_proxy.get("username"),
    )


class ProvisioningService:
    def __init__(self, services: Container) -> None:
        self.s = services
        self.proxies = ProxyService(services)
        self.instances = InstanceService(services)
        self.transitions = ChipTransitions(services.events)
        self.keys = TenantKeys(services.settings)

    def _desired_config(self, user_id: UUID, chip_id: UUID, proxy: ProxyConfig | None) -> dict[str, Any]:
        settings = self.s.settings
        return build_session_config(
            metadata=chip_metadata(user_id, chip_id),
            # the tenant's own route and derived key: its events can only touch its own chips
            webhook_url=tenant_webhook_url(settings, user_id),
            hmac_key=self.keys.webhook_key(user_id),
            proxy=proxy,
            retry_attempts=settings.webhook_retry_attempts,
            retry_delay_seconds=settings.webhook_retry_delay_seconds,
            engine=settings.waha_engine,
        )

    async def _client(self, user_id: UUID) -> WahaClient:
        instance = await self.instances.ensure(user_id)
        if not instance.base_url:  # ensure_instance answers running instances with an address
            raise DependencyUnavailable("The WAHA instance has no address yet; retrying.")
        return self.s.waha.for_tenant(instance.base_url, user_id)

    async def provision(self, chip_id: UUID) -> str:
        """ensure instance → proxy → create-or-update the session → start it."""
        chip = await queries.for_work(chip_id)
        if chip is None or chip.status == ChipStatus.DELETING:
            return "skipped"
        client = await self._client(chip.user_id)
        proxy_id = await self.proxies.assign(chip_id)
        proxy = await self.proxies.waha_config(proxy_id)
        config = self._desired_config(chip.user_id, chip_id, proxy)
        name = chip.session_name
        # The tenant's intent, not the status: a chip they logged out stays stopped (fixing its
        # config must not start pairing), while one WAHA stopped on its own (an instance shutting
        # down sends STOPPED for every session) is started again.
        should_run = chip.desired_running
        try:
            try:
                session = await client.get_session(name)
            except WahaNotFound:
                session = None
            if session is None:
                await client.create_session_with_config(name, config, start=should_run)
                outcome = "created"
            elif chip.proxy_dirty or _differs(session, config):
                # proxy_dirty: the proxy changed (possibly only its password, which WAHA may not
                # echo back), so the session config is rewritten whatever it shows
                await client.update_session(name, config)  # WAHA restarts a running session
                if session.status == "STOPPED" and should_run:
                    await client.start_session(name)
                outcome = "updated"
            elif session.status == "STOPPED" and should_run:
                await client.start_session(name)
                outcome = "started"
            else:
                outcome = "unchanged"
        except WahaUnavailable:
            await self.s.scheduler.invalidate(str(chip.user_id))
            raise
        await queries.provisioned(chip_id, proxy_id)
        if outcome == "created":
            await self.instances.recount_sessions(chip.user_id, ChipStatus.DELETING)
        logger.info("chip %s provisioned (%s)", chip_id, outcome)
        return outcome

    async def rotate_proxy(self, chip_id: UUID) -> str:
        """Move the chip to another usable proxy and make its WAHA session follow."""
        chip = await queries.for_work(chip_id)
        if chip is None or chip.status in (ChipStatus.DELETING, ChipStatus.PROVISIONING):
            return "skipped"  # (provisioning applies the current assignment itself)
        return await self.provision(chip_id)

    async def teardown(self, chip_id: UUID) -> str:
        """Delete the WAHA session (404 = done), release the proxy, remove the chip and its limits."""
        chip = await queries.for_work(chip_id)
        if chip is None:
            return "gone"
        if chip.status != ChipStatus.DELETING:
            return "skipped"
        user_id = chip.user_id
        instance = await self.s.scheduler.get_instance(str(user_id))
        if instance is not None and instance.base_url and instance.status == "running":
            try:
                await self.s.waha.for_tenant(instance.base_url, user_id).delete_session(chip.session_name)
            except WahaUnavailable:
                await self.s.scheduler.invalidate(str(user_id))
                raise
        # An instance that is not running keeps the session in its storage; the reconciler
        # deletes sessions that have no chip once the instance is back.
        if await self.transitions.remove(chip_id):
            await self.instances.recount_sessions(user_id, ChipStatus.DELETING)
        try:
            await self.s.redis.delete(key("ratelimit", "pairing", chip_id), key("ratelimit", "messages", chip_id))
        except REDIS_UNAVAILABLE_ERRORS:
            pass  # limits expire on their own
        logger.info("chip %s torn down", chip_id)
        return "deleted"

    async def mark_failed(self, chip_id: UUID, reason: str) -> None:
        """After the last retry: the chip needs attention, and says why."""
        await self.transitions.move(
            chip_id,
            ChipStatus.FAILED,
            Source.WORKER,
            reason[:500],
            never_from=(ChipStatus.DELETING, ChipStatus.FAILED),
            error=reason[:500],
        )

    async def wake_tenant(self, user_id: UUID) -> bool:
        """Tenant activity after idling: provisioning brings the instance (and its persisted
        sessions, no new QR) back. Returns True when this call started the wake-up."""
        if not await self.instances.unpark_idle(user_id):
            return False
        for chip_id in await queries.live_chip_ids(user_id):
            try:
                await self.s.queue.enqueue(PROVISION_CHIP, chip_id, chip_id=str(chip_id))
            except DependencyUnavailable:
                break  # the reconciler ensures instances of non-idle tenants with chips
        return True
