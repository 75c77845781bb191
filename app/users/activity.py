"""Tenant activity: feeds idle reaping and wakes an idle tenant's instance on their return.

Throttled in-process (one database write per tenant per interval per process), so the hot
paths pay a dictionary lookup, not a round trip. Waking is a job (``wake_instance``, run by the
worker through the provisioning service), so this module needs only the queue, not the services.
"""

from __future__ import annotations

import asyncio
import logging
import time
from uuid import UUID

from app.core import db
from app.core.queue import WAKE_INSTANCE, JobQueue

logger = logging.getLogger("whago.activity")

# One round trip records the activity and says whether a wake-up is worth a job. Only a filter:
# the job re-checks (and claims) the idle status itself, so a stale answer costs nothing.
_RECORD_SQL = (
    "UPDATE users SET last_active_at = now() WHERE id = $1"
    # 'idle' is instances.queries.RecordStatus.IDLE, spelled out: users sits below instances
    " RETURNING EXISTS (SELECT 1 FROM instances WHERE user_id = $1 AND status = 'idle') AS idle"
)


class ActivityTracker:
    def __init__(self, queue: JobQueue, interval_seconds: float = 300.0, max_tracked: int = 100_000) -> None:
        self.queue = queue
        self.interval = interval_seconds
        self.max_tracked = max_tracked
        self._last: dict[UUID, float] = {}
        self._tasks: set[asyncio.Task] = set()

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
            row = await db.fetchrow(_RECORD_SQL, user_id)
            if (
                row is not None
                and row["idle"]
                and await self.queue.enqueue(WAKE_INSTANCE, user_id, user_id=str(user_id))
            ):
                logger.info("tenant %s is back: waking their instance", user_id)
        except Exception as exc:  # activity is best effort; the request already succeeded
            self._last.pop(user_id, None)
            logger.warning("could not record activity of %s: %s", user_id, type(exc).__name__)
