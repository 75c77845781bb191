"""Tenant activity: feeds idle reaping and wakes an idle tenant's instance on their return.

Throttled in-process (one database write per tenant per interval per process), so the hot
paths pay a dictionary lookup, not a round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

from app.core import db

logger = logging.getLogger("whago.activity")


class ActivityTracker:
    def __init__(self, interval_seconds: float = 300.0, max_tracked: int = 100_000) -> None:
        self.interval = interval_seconds
        self.max_tracked = max_tracked
        self._last: dict[UUID, float] = {}
        self._tasks: set[asyncio.Task] = set()
        self.services = None  # set by Services.build (wake-up needs the queue)

    def touch(self, user_id: UUID) -> None:
        now = time.monotonic()
        if now - self._last.get(user_id, -1e18) < self.interval:
            return
        if len(self._last) >= self.max_tracked:
            self._last.clear()
        self._last[user_id] = now
        task = asyncio.get_running_loop().create_task(self._record(user_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, user_id: UUID) -> None:
        try:
            await db.fetch("UPDATE users SET last_active_at = now() WHERE id = $1", user_id)
            if self.services is not None:
                from app.chips.provisioning import ProvisioningService  # late: chips imports services

                if await ProvisioningService(self.services).wake_tenant(user_id):
                    logger.info("tenant %s is back: waking their instance", user_id)
        except Exception as exc:  # activity is best effort; the request already succeeded
            self._last.pop(user_id, None)
            logger.warning("could not record activity of %s: %s", user_id, type(exc).__name__)
